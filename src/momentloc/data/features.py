"""Feature stores keyed by video id (folder of .npy, one .npz, one .hdf5), resampling and clip preparation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import numpy as np

from momentloc.errors import DataError, first_line
from momentloc.files import atomic_path, atomic_write

FORMATS = ("npy", "npz", "hdf5")


def store_format(path: Union[str, Path]) -> str:
    """The store format of ``path``: a folder is ``npy``, else by suffix."""
    p = Path(path)
    if p.is_dir() or p.suffix == "":
        return "npy"
    suffix = p.suffix.lower().lstrip(".")
    if suffix in ("h5", "hdf5"):
        return "hdf5"
    if suffix == "npz":
        return "npz"
    raise DataError(p, f"unknown feature store type {p.suffix!r}; expected a folder, .npz, .h5 or .hdf5")


class FeatureStore:
    """Read-only access to per-video feature arrays [T, D].

    The underlying file is opened lazily and once per process, so a store
    can be handed to DataLoader workers (each opens its own handle).
    """

    def __init__(self, path: Union[str, Path], dim: Optional[int] = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(self.path, "feature store not found")
        self.format = store_format(self.path)
        self.dim = dim
        self._handle = None
        self._pid = -1
        self._keys: Optional[list[str]] = None

    def _open(self):
        if self._handle is None or self._pid != os.getpid():
            try:
                if self.format == "hdf5":
                    import h5py

                    self._handle = h5py.File(self.path, "r")
                elif self.format == "npz":
                    self._handle = np.load(self.path, allow_pickle=False)
                else:
                    self._handle = self.path
            except (OSError, ValueError) as err:  # truncated, or not this format at all
                raise DataError(self.path, f"cannot open as a {self.format} feature store ({first_line(err)})") from None
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_pid"] = -1
        return state

    def keys(self) -> list[str]:
        """Every video id in the store."""
        if self._keys is None:
            h = self._open()
            if self.format == "npy":
                self._keys = sorted(p.stem for p in self.path.glob("*.npy"))
            else:
                self._keys = list(h.keys())
        return self._keys

    def __contains__(self, video_id: str) -> bool:
        return video_id in set(self.keys())

    def _raw(self, video_id: str) -> np.ndarray:
        h = self._open()
        if self.format == "npy":
            f = self.path / f"{video_id}.npy"
            if not f.exists():
                raise DataError(self.path, f"video {video_id!r} not in feature store")
            return np.load(f, mmap_mode="r", allow_pickle=False)
        if video_id not in h:
            raise DataError(self.path, f"video {video_id!r} not in feature store")
        return h[video_id][()]

    def get(self, video_id: str) -> np.ndarray:
        """The features of one video as float32 [T, D], validated."""
        try:
            arr = np.asarray(self._raw(video_id), dtype=np.float32)
        except (OSError, ValueError, TypeError) as err:  # a torn .npy, strings, an HDF5 group instead of an array
            raise DataError(self.path, f"cannot read as a float array [T, D] ({first_line(err)})",
                            where=f"key {video_id}") from None
        return check_features(arr, video_id, self.path, self.dim)

    def check_ids(self, video_ids: Iterable[str]) -> None:
        """Raise one error naming how many and which (first few) ids are missing."""
        have = set(self.keys())
        missing = sorted({v for v in video_ids if v not in have})
        if missing:
            shown = ", ".join(missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(self.path, f"{len(missing)} video(s) missing from the feature store: {shown}{more}")


def check_features(
    arr: np.ndarray, video_id: str, path: Union[str, Path], dim: Optional[int], where: Optional[str] = None
) -> np.ndarray:
    """Validate one video's features: 2-D, right width, non-empty, finite (``where`` defaults to its store key)."""
    loc = f"key {video_id}" if where is None else where
    if arr.ndim != 2:
        raise DataError(path, f"expected a [T, D] array, got shape {tuple(arr.shape)}", where=loc)
    if arr.shape[0] == 0:
        raise DataError(path, "zero-length feature sequence (expected at least one clip)", where=loc)
    if dim is not None and arr.shape[1] != dim:
        raise DataError(path, f"expected feature dimension {dim}, got {arr.shape[1]}", where=loc)
    if not np.isfinite(arr).all():
        bad = int(np.argmax(~np.isfinite(arr).all(axis=1)))
        raise DataError(path, f"features contain NaN or infinite values (first at clip {bad}; expected finite numbers)",
                        where=loc)
    return arr


def load_npy(path: Union[str, Path]) -> np.ndarray:
    """One array from a .npy file, refusing pickled objects and files of any other kind."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            fh.seek(0)
            if magic != b"\x93NUMPY":
                raise DataError(path, "not a .npy file (expected an array saved with numpy.save)")
            return np.load(fh, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (OSError, ValueError) as err:  # torn file, object array
        raise DataError(path, f"cannot read the .npy array ({first_line(err)})") from None


def resample(features: np.ndarray, num: int) -> np.ndarray:
    """Resample [T, D] to [num, D]: mean-pool when shrinking, linear interpolation when growing."""
    t = features.shape[0]
    if t == num:
        return features
    if t > num:
        # Each output clip averages the input clips whose span it covers.
        edges = np.linspace(0, t, num + 1)
        starts = np.floor(edges[:-1]).astype(int)
        ends = np.maximum(np.ceil(edges[1:]).astype(int), starts + 1)
        csum = np.concatenate([np.zeros((1, features.shape[1]), features.dtype), np.cumsum(features, 0)])
        return ((csum[ends] - csum[starts]) / (ends - starts)[:, None]).astype(np.float32)
    pos = (np.arange(num) + 0.5) * t / num - 0.5
    pos = np.clip(pos, 0, t - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, t - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    return (features[lo] * (1 - w) + features[hi] * w).astype(np.float32)


def prepare_clips(
    features: np.ndarray, num_clips: Optional[int] = None, max_clips: Optional[int] = None, normalize: bool = False
) -> np.ndarray:
    """A video's [T, D] features as a model takes them (``data.num_clips``, ``data.max_clips``,
    ``data.normalize_features``): resampled to ``num_clips`` clips, else down to ``max_clips`` when longer;
    then each clip L2-normalised if asked. Training, evaluation and ``Predictor`` all prepare clips here."""
    if num_clips is not None:
        features = resample(features, num_clips)
    elif max_clips is not None and features.shape[0] > max_clips:
        features = resample(features, max_clips)
    if normalize:
        features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-6)
    return features


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along time (edges repeated)."""
    if sigma <= 0 or len(x) < 2:
        return x
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(x, ((r, r), (0, 0)), mode="edge")
    out = np.zeros_like(x)
    for i, w in enumerate(k):
        out += w * padded[i : i + len(x)]
    return out


def write_store(path: Union[str, Path], items: Iterable[tuple[str, np.ndarray]], fmt: Optional[str] = None) -> Path:
    """Write (video_id, [T, D]) items to a store, atomically per file."""
    path = Path(path)
    fmt = fmt or store_format(path)
    if fmt == "npy":
        path.mkdir(parents=True, exist_ok=True)
        for vid, arr in items:
            with atomic_write(path / f"{vid}.npy") as fh:
                np.save(fh, np.asarray(arr, dtype=np.float32))
        return path
    if fmt == "npz":
        with atomic_write(path) as fh:
            np.savez(fh, **{vid: np.asarray(a, dtype=np.float32) for vid, a in items})
    else:
        import h5py

        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h:
            for vid, arr in items:
                h.create_dataset(vid, data=np.asarray(arr, dtype=np.float32))
    return path


def iter_store(store: FeatureStore) -> Iterator[tuple[str, np.ndarray]]:
    """Every (video_id, features) in a store."""
    for vid in store.keys():
        yield vid, store.get(vid)


def convert_store(src: Union[str, Path], dst: Union[str, Path]) -> int:
    """Copy every video of one store into another format; returns the count."""
    store = FeatureStore(src)
    n = len(store.keys())
    write_store(dst, iter_store(store))
    return n
