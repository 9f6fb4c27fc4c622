"""Predictor: a checkpoint -> localize(video or features, queries) -> ranked moments in seconds."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from momentloc.data.batch import collate
from momentloc.data.features import check_features, prepare_clips
from momentloc.errors import CheckpointError, DataError, LimitError, MomentlocError
from momentloc.types import Batch, Moment

# Cells (queries x clips x clips) of one forward pass: a span model's start x end scores grow with the square of the
# clips, so long videos are answered in smaller query batches rather than all at once (2**25 cells: ~1.3 GB).
QUERY_CELLS = 2**25
DEFAULT_MAX_CLIPS = 4096  # the same default as momentloc.video.DEFAULT_MAX_CLIPS (kept here: no PyAV import)
MAX_TOP_K = 1000
MAX_DURATION = 1e7  # seconds

if TYPE_CHECKING:  # the video stack (PyAV) loads only when a raw video is given
    from momentloc.encoders import FeatureSpec, FrameEncoder


@dataclass
class EncodedVideo:
    """Clip features of one video, prepared once for many queries."""

    features: torch.Tensor  # [T, D] after the checkpoint's resampling
    duration: float
    name: str = "video"


class Predictor:
    """Loads a checkpoint once; encodes a video once; answers many queries against it."""

    def __init__(self, module, device: Union[str, torch.device] = "cpu", feature_spec: Optional["FeatureSpec"] = None,
                 encoder: Optional["FrameEncoder"] = None, cache_size: int = 16,
                 max_clips: Optional[int] = DEFAULT_MAX_CLIPS) -> None:
        self.module = module.to(device).eval()
        self.model = module.model
        self.vocab = module.vocab
        self.cfg = module.cfg
        self.device = torch.device(device)
        if self.device.type == "cuda":  # fp32 matrix products as the model was trained and evaluated (TF32 or not)
            torch.set_float32_matmul_precision(self.cfg.train.matmul_precision)
        self.feature_spec = feature_spec
        self._encoder = encoder
        self._weights: Optional[Union[str, Path]] = None
        self._cache: "OrderedDict[tuple, EncodedVideo]" = OrderedDict()
        self._cache_size = cache_size
        if max_clips is not None and max_clips < 1:
            raise MomentlocError(f"max_clips must be at least 1, got {max_clips}")
        self.max_clips = max_clips  # longest video (in clips) accepted; None: no limit
        self._lock = threading.Lock()
        self.videos_encoded = 0  # raw videos decoded and encoded (not served from the cache)

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path], device: Optional[str] = None, encoder: Optional["FrameEncoder"] = None,
                        weights: Optional[Union[str, Path]] = None,
                        max_clips: Optional[int] = DEFAULT_MAX_CLIPS) -> "Predictor":
        """Load a momentloc checkpoint (safely: ``weights_only``) and the feature spec it was trained on.

        ``encoder`` (or ``weights`` for the spec's own encoder) is what raw videos are encoded with; it must
        match the spec, else a ``CheckpointError`` is raised when a raw video is first encoded.
        """
        from momentloc.checkpoint import check_finite_weights
        from momentloc.restore import module_from_checkpoint

        dev = check_device(device) if device else ("cuda" if torch.cuda.is_available() else "cpu")
        module = module_from_checkpoint(Path(path))
        check_finite_weights(path, module.state_dict())
        from momentloc.video import checkpoint_feature_spec

        pred = cls(module, dev, feature_spec=checkpoint_feature_spec(path, module.cfg), encoder=encoder, max_clips=max_clips)
        pred._weights = weights
        return pred

    @classmethod
    def from_model(cls, model: nn.Module, vocab: Any, cfg: Any, device: str = "cpu", feature_spec: Optional["FeatureSpec"] = None,
                   encoder: Optional["FrameEncoder"] = None) -> "Predictor":
        """Wrap an in-memory model (with its vocabulary and experiment config) without a checkpoint file."""
        from momentloc.restore import LoadedModel

        return cls(LoadedModel(model, vocab, cfg), device, feature_spec, encoder)

    @property
    def feature_dim(self) -> int:
        """The clip-feature width the checkpoint was trained on."""
        return int(self.cfg.data.feature_dim)

    def frame_encoder(self) -> "FrameEncoder":
        """The encoder raw videos go through (built from the feature spec on first use; checked against it)."""
        from momentloc.video import check_encoder, encoder_for_spec

        if self.feature_spec is None:
            raise CheckpointError("this checkpoint carries no feature spec (encoder, fps, dim), so a raw video cannot be "
                                  "encoded like its training features; pass features instead (--features), or embed the spec with "
                                  "momentloc.video.attach_feature_spec")
        if self.feature_spec.dim != self.feature_dim:
            raise CheckpointError(f"the model takes features of dim {self.feature_dim}, "
                                  f"its feature spec says {self.feature_spec.describe()}")
        if self._encoder is None:
            self._encoder = encoder_for_spec(self.feature_spec, self._weights, device=str(self.device))
        return check_encoder(self.feature_spec, self._encoder)

    def _encode_file(self, path: Path) -> tuple[np.ndarray, float]:
        from momentloc.video import features_for_checkpoint

        self.videos_encoded += 1
        return features_for_checkpoint(path, self.cfg, self.feature_spec, self.frame_encoder(), max_clips=self.max_clips)

    def encode_video(self, video: Union[np.ndarray, str, Path], duration: Optional[float] = None,
                     fps: Optional[float] = None, source: Optional[str] = None) -> EncodedVideo:
        """Prepare features [T, D] (or a video file, through the feature extractor) for localization.

        ``source`` names where an array came from (e.g. its .npy file) in error messages.
        """
        if isinstance(video, (str, Path)):
            path = Path(video)
            if not path.is_file():
                raise DataError(path, "video file not found")
            st = path.stat()
            key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
            with self._lock:  # one decode per file even when requests arrive together
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return self._cache[key]
                feats, dur = self._encode_file(path)
                enc = self._prepare(feats, dur, path.name)
                self._cache[key] = enc
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
                return enc
        try:
            feats = np.asarray(video, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise DataError(source or "<features>", f"expected a float array [T, D] ({err})") from None
        if duration is None:
            if fps is None:
                raise MomentlocError("localize(features): give the video's duration in seconds (or fps)")
            duration = feats.shape[0] / fps
        return self._prepare(feats, float(duration), "features", source)

    def _prepare(self, feats: np.ndarray, dur: float, name: str, source: Optional[str] = None) -> EncodedVideo:
        where = "" if source else None  # a file of its own has no key to name
        source = source or "<features>"
        if feats.ndim == 2 and feats.shape[1] != self.feature_dim:
            made = f" (made by {self.feature_spec.describe()})" if self.feature_spec is not None else ""
            raise DataError(source, f"features have dimension {feats.shape[1]}, "
                                    f"but this checkpoint takes {self.feature_dim}-dim features{made}")
        if self.max_clips is not None and feats.ndim >= 1 and feats.shape[0] > self.max_clips:
            raise LimitError(source, f"{feats.shape[0]} clips, more than the limit of {self.max_clips}; raise it "
                                     "(--max-clips, or max_clips=) to accept longer videos")
        feats = check_features(feats, name, source, self.feature_dim, where=where)
        data = self.cfg.data
        feats = prepare_clips(feats, data.num_clips, data.max_clips, data.normalize_features)
        if not (dur > 0 and np.isfinite(dur)):
            raise DataError(source, f"duration must be a positive number of seconds, got {dur}")
        if dur > MAX_DURATION:
            raise DataError(source, f"duration {dur:g} s is past the {MAX_DURATION:g} s (about 115 days) a video can have")
        return EncodedVideo(torch.from_numpy(np.require(feats, np.float32, ["C", "W"])), dur, name)  # W: a read-only file is copied

    def _batch(self, enc: EncodedVideo, qs: Sequence[str], offset: int = 0) -> Batch:
        """The queries against one video: its features go to the device once and are shared by every row (a view)."""
        items = []
        for i, q in enumerate(qs):
            row, _ = self.vocab.encode(q, self.cfg.data.text.max_words)
            if len(row) == 0 or not (row > 1).any():
                raise DataError(None, f"query {q!r} has no known words for this checkpoint's vocabulary")
            items.append({"index": offset + i, "video_id": enc.name, "video": enc.features,
                          "word_ids": torch.from_numpy(row), "duration": float(enc.duration)})
        return collate(items, self.vocab.vectors, device=self.device, share_video=True)

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        """bf16 on a GPU for a checkpoint trained in bf16 mixed precision (as ``momentloc eval`` runs it), else None."""
        bf16 = str(self.cfg.train.precision).startswith("bf16")
        return torch.bfloat16 if bf16 and self.device.type == "cuda" else None

    def autocast(self) -> torch.autocast:
        """The autocast context inference runs in (disabled unless ``autocast_dtype`` is set)."""
        dtype = self.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    @torch.no_grad()
    def localize(
        self,
        video: Union[EncodedVideo, np.ndarray, str, Path],
        queries: Union[str, Sequence[str]],
        top_k: int = 5,
        duration: Optional[float] = None,
        batch_size: int = 64,
    ) -> list[list[Moment]]:
        """Top-k moments (seconds, best first) for each query."""
        enc = video if isinstance(video, EncodedVideo) else self.encode_video(video, duration)
        qs = [queries] if isinstance(queries, str) else list(queries)
        if not 1 <= top_k <= MAX_TOP_K:
            raise MomentlocError(f"top_k must be from 1 to {MAX_TOP_K}, got {top_k}")
        clips = int(enc.features.shape[0])
        batch_size = max(1, min(batch_size, QUERY_CELLS // (clips * clips)))
        out: list[list[Moment]] = []
        for start in range(0, len(qs), batch_size):
            batch = self._batch(enc, qs[start : start + batch_size], start)
            with self.autocast():  # forward and decode, as evaluation runs them
                out.extend(self.model.decode(self.model(batch), batch, top_k))
        return out

    @torch.no_grad()
    def raw_output(self, video: Union[EncodedVideo, np.ndarray, str, Path], query: str, duration: Optional[float] = None) -> Any:
        """The model's own ``Output`` for one query (e.g. ``score_map`` of tan2d, ``alignment_map`` of fsan)."""
        enc = video if isinstance(video, EncodedVideo) else self.encode_video(video, duration)
        with self.autocast():
            return self.model(self._batch(enc, [query]))

    def query_tokens(self, query: str) -> list[str]:
        """The words of ``query`` as the model reads them (after tokenizing and truncation)."""
        return self.vocab.encode(query, self.cfg.data.text.max_words)[1]

    def score_curve(self, video: Union[EncodedVideo, np.ndarray, str, Path], query: str, duration: Optional[float] = None,
                    candidates: int = 100, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """(times s, score): at each time the best score of any of the top ``candidates`` moments covering it."""
        enc = video if isinstance(video, EncodedVideo) else self.encode_video(video, duration)
        moments = self.localize(enc, query, top_k=candidates)[0]
        times = (np.arange(points) + 0.5) * enc.duration / points
        curve = np.full(points, np.nan)
        for m in moments:
            inside = (times >= m.start) & (times <= m.end)
            curve[inside] = np.fmax(curve[inside], m.score)
        if np.isnan(curve).all():
            curve[:] = 0.0
        else:
            curve[np.isnan(curve)] = np.nanmin(curve)  # times no candidate covers get the lowest score
        return times, curve


def check_device(device: str) -> str:
    """A torch device this build can use, else one line saying which it can (``tpu``, ``cuda`` on a CPU build)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise MomentlocError(f"device {device!r} is not a torch device (expected cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MomentlocError(f"device {device!r}: no CUDA GPU is available to this torch build (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MomentlocError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise MomentlocError(f"device {device!r}: MPS is not available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise MomentlocError(f"device {device!r} is not supported (expected cpu, cuda, cuda:N or mps)")
    return device


def read_features_file(path: Union[str, Path], max_clips: Optional[int] = DEFAULT_MAX_CLIPS) -> np.ndarray:
    """A [T, D] ``.npy`` array, its header checked first: a shape past ``max_clips`` or past the file's size is refused
    before any memory is taken for it."""
    from momentloc.data.features import load_npy

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(6) == b"\x93NUMPY":
                fh.seek(0)
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)  # the header only, no data
                need = int(np.prod(shape, dtype=np.float64) * dtype.itemsize) if dtype.itemsize else 0
                have = path.stat().st_size - fh.tell()
                if len(shape) >= 1 and max_clips is not None and shape[0] > max_clips:
                    raise LimitError(path, f"{shape[0]} clips, more than the limit of {max_clips}; raise it "
                                           "(--max-clips, or max_clips=) to accept longer videos")
                if not dtype.hasobject and need > have:
                    raise DataError(path, f"header says shape {tuple(shape)} ({need} bytes) but the file holds {have} bytes "
                                          "(truncated or damaged)")
    except (OSError, ValueError, TypeError):
        pass  # load_npy says what is wrong in one line
    return load_npy(path)
