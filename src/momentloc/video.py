"""Raw videos -> clip features: PyAV decoding at a fixed fps (by timestamp), frame encoders, resumable extraction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from momentloc.encoders import (  # noqa: F401 - re-exported: momentloc.video is the user-facing entry
    ClipEncoder,
    FeatureSpec,
    FrameEncoder,
    TinyEncoder,
    check_encoder,
    encoder_for_spec,
    file_fingerprint,
    load_encoder,
)
from momentloc.errors import CheckpointError, DataError, LimitError, MomentlocError
from momentloc.files import atomic_path, write_text_atomic

PathLike = Union[str, Path]
SPEC_FILE = "feature_spec.json"
INDEX_FILE = "videos.jsonl"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv", ".ts")
# Clips one video may have (after frames_per_clip pooling): decoding time and model memory grow with it (a span
# model's start x end scores are quadratic). 4096 clips: 68 min at 1 fps. Raised with --max-clips / max_clips=.
DEFAULT_MAX_CLIPS = 4096
# Decoded frames per sampled frame a video may need (a 120 fps source sampled at 1 fps needs 120).
DECODED_PER_SAMPLED = 120
FPS_RANGE = (0.01, 1000.0)  # frames sampled per second: a feature spec or --fps outside it is refused
MAX_FRAMES_PER_CLIP = 10_000
COLOURS = {"red": (220, 30, 30), "green": (30, 190, 60), "blue": (40, 70, 220), "yellow": (235, 215, 40),
           "white": (240, 240, 240), "black": (15, 15, 15), "purple": (140, 40, 170), "orange": (245, 140, 20)}


class FrameSampler:
    """Iterate (time s, RGB frame) at a fixed fps, picking per target time the last frame shown by then (PTS-based)."""

    def __init__(self, path: PathLike, fps: float, short_side: Optional[int] = None, max_frames: Optional[int] = None) -> None:
        check_sampling(fps, 1)
        self.path, self.fps, self.short_side = Path(path), float(fps), short_side
        # Sampled frames are bounded by max_frames, decoded ones by DECODED_PER_SAMPLED times that.
        self.max_frames = max_frames
        self.duration = 0.0
        self.frames_decoded = 0

    def _rgb(self, frame: Any) -> np.ndarray:
        w, h = frame.width, frame.height
        s = self.short_side
        if s and min(w, h) > s:
            # Shrinking in FFmpeg's scaler keeps big frames out of Python memory.
            w, h = max(1, round(w * s / min(w, h))), max(1, round(h * s / min(w, h)))
        return frame.to_ndarray(format="rgb24", width=w, height=h)

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        import av

        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
            raise DataError(self.path, f"cannot open as a video ({type(err).__name__}; expected a file FFmpeg can decode)") from None
        with container:
            if not container.streams.video:
                raise DataError(self.path, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.guessed_rate or stream.average_rate or 25)
            origin = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else None
            k, prev, prev_t, last_len = 0, None, 0.0, 1.0 / rate
            declared = _declared_seconds(container, stream)
            if self.max_frames is not None and declared is not None and declared * self.fps > self.max_frames + 1:
                self._too_long(f"its header says {declared:.0f} s")
            try:
                for frame in container.decode(stream):
                    t = frame.time if frame.time is not None else prev_t + 1.0 / rate
                    origin = t if origin is None else origin
                    t -= origin
                    if prev is not None:
                        if t <= prev_t:
                            continue  # out-of-order or repeated timestamp: keep the first
                        # Every target time before this frame shows the previous one.
                        rgb = None
                        while k / self.fps < t - 1e-6:
                            self._check_count(k)
                            rgb = self._rgb(prev) if rgb is None else rgb
                            yield k / self.fps, rgb
                            k += 1
                    if frame.duration and frame.time_base:
                        # Some muxers (AVI) report one tick; trust only a plausible frame length.
                        shown = float(frame.duration * frame.time_base)
                        last_len = shown if shown >= 0.25 / rate else 1.0 / rate
                    self.frames_decoded += 1
                    if self.max_frames is not None and self.frames_decoded > DECODED_PER_SAMPLED * self.max_frames:
                        self._too_long(f"more than {self.frames_decoded - 1} frames decode")
                    prev, prev_t = frame, t
            except av.FFmpegError as err:
                if prev is None:
                    raise DataError(self.path, f"cannot decode video ({type(err).__name__})") from None
            if prev is None:
                raise DataError(self.path, "no video frames could be decoded")
            self.duration = prev_t + last_len
            if declared is not None and declared - self.duration > max(1.0, 0.1 * declared):
                # A cut-off file decodes without an error; its header still says how long it should be.
                raise DataError(self.path, f"only {self.duration:.1f} s of the {declared:.1f} s video stream could be "
                                           "decoded (expected the whole stream; is the file truncated?)")
            rgb = self._rgb(prev)
            while k / self.fps < self.duration - 1e-6:
                self._check_count(k)
                yield k / self.fps, rgb
                k += 1


    def _check_count(self, k: int) -> None:
        if self.max_frames is not None and k >= self.max_frames:
            self._too_long(f"its timestamps reach past {k / self.fps:.0f} s")

    def _too_long(self, why: str) -> None:
        assert self.max_frames is not None
        raise LimitError(self.path, f"video too long: {why}, more than the limit of {self.max_frames} frames sampled at "
                                    f"{self.fps:g} fps ({self.max_frames / self.fps:.0f} s); raise the clip limit "
                                    "(--max-clips, or max_clips=) to accept longer videos")


def check_sampling(fps: Any, frames_per_clip: Any, where: str = "") -> None:
    """Refuse a sampling rate or clip size outside what a video can be decoded at (NaN, inf, 0, 1e9 ...)."""
    lo, hi = FPS_RANGE
    prefix = f"{where}: " if where else ""
    try:
        ok = lo <= float(fps) <= hi
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise MomentlocError(f"{prefix}fps must be a number from {lo:g} to {hi:g} frames per second, got {fps}")
    if isinstance(frames_per_clip, bool) or not isinstance(frames_per_clip, int) or not 1 <= frames_per_clip <= MAX_FRAMES_PER_CLIP:
        raise MomentlocError(f"{prefix}frames per clip must be a whole number from 1 to {MAX_FRAMES_PER_CLIP}, "
                             f"got {frames_per_clip}")


def _declared_seconds(container: Any, stream: Any) -> Optional[float]:
    """The video stream's length as its header states it, or None when the file does not say."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    # The container's length covers every stream; trust it only when the video is the only one.
    if container.duration and len(container.streams) == 1:
        return container.duration / 1_000_000  # AV_TIME_BASE units
    return None


def pool_clips(features: np.ndarray, frames_per_clip: int) -> np.ndarray:
    """Mean-pool consecutive frame features into clips (the last clip may hold fewer frames)."""
    if frames_per_clip <= 1:
        return features.astype(np.float32)
    n = int(np.ceil(features.shape[0] / frames_per_clip))
    return np.stack([features[i * frames_per_clip : (i + 1) * frames_per_clip].mean(0) for i in range(n)]).astype(np.float32)


def encode_video_file(path: PathLike, encoder: FrameEncoder, fps: float, frames_per_clip: int = 1,
                      batch_size: int = 32, max_clips: Optional[int] = DEFAULT_MAX_CLIPS) -> tuple[np.ndarray, float]:
    """One video -> (clip features [T, dim], duration s); frames go through the encoder in batches.

    A video of more than ``max_clips`` clips (None: no limit) is refused with a ``LimitError`` as soon as its
    header or its timestamps say so, before the frames are encoded."""
    check_sampling(fps, frames_per_clip)
    sampler = FrameSampler(path, fps, encoder.short_side, None if max_clips is None else max_clips * frames_per_clip)
    chunks: list[np.ndarray] = []
    buf: list[np.ndarray] = []

    def flush() -> None:
        out = np.asarray(encoder.encode(np.stack(buf)), dtype=np.float32)
        if out.shape != (len(buf), encoder.dim) or not np.isfinite(out).all():
            raise DataError(path, f"encoder returned shape {out.shape} (or non-finite values); expected ({len(buf)}, {encoder.dim})")
        chunks.append(out)
        buf.clear()

    for _, frame in sampler:
        if buf and frame.shape != buf[0].shape:
            flush()  # a resolution change mid-stream: encode what we have before stacking new sizes
        buf.append(frame)
        if len(buf) >= batch_size:
            flush()
    if buf:
        flush()
    return pool_clips(np.concatenate(chunks), frames_per_clip), sampler.duration


def list_videos(folder: PathLike) -> list[Path]:
    """Video files (by suffix) under a folder, sorted, hidden files skipped."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def spec_path(store: PathLike) -> Path:
    """Where a store keeps its feature spec: inside a folder, beside a single file."""
    store = Path(store)
    return store / SPEC_FILE if store.is_dir() or store.suffix == "" else store.with_name(store.name + ".spec.json")


def read_store_spec(store: PathLike) -> Optional[FeatureSpec]:
    """The feature spec a store was written with, or None when it has none."""
    p = spec_path(store)
    if not p.is_file():
        return None
    try:
        return FeatureSpec.from_dict(json.loads(p.read_text(encoding="utf-8")), str(p))
    except json.JSONDecodeError as err:
        raise DataError(p, f"not valid JSON ({err.msg})") from None


@dataclass
class ExtractResult:
    """What an extraction run did: ids written, ids skipped as done, (file, reason) that failed."""

    store: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _indexed(folder: Path) -> dict[str, dict]:
    """The store's index rows by video id; lines torn by a kill are dropped and the index rewritten without them."""
    seen: dict[str, dict] = {}
    index = folder / INDEX_FILE
    if not index.is_file():
        return seen
    text = index.read_text(encoding="utf-8", errors="replace")
    torn = bool(text) and not text.endswith("\n")
    for line in text.splitlines():
        try:
            row = json.loads(line)
            seen[str(row["id"])] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            torn = True  # that video is simply redone
    if torn:
        # Otherwise the next row would be appended to the torn line and be unreadable too.
        write_text_atomic(index, "".join(json.dumps(row) + "\n" for row in seen.values()))
    return seen


def extract_features(videos: Iterable[PathLike], encoder: FrameEncoder, fps: float, out_store: PathLike, batch_size: int = 32,
                     resume: bool = True, frames_per_clip: int = 1, progress: bool = True,
                     max_clips: Optional[int] = DEFAULT_MAX_CLIPS) -> ExtractResult:
    """Encode videos into a feature store keyed by file stem; resumable; failures are collected, not fatal."""
    from momentloc.data.features import store_format, write_store

    check_sampling(fps, frames_per_clip)
    out = Path(out_store)
    if out.exists() and not out.is_dir() and store_format(out) == "npy":
        raise DataError(out, "exists and is not a folder; a .npy store is a folder (or name a .npz / .h5 file)")
    single = store_format(out) != "npy"
    # A single-file store is assembled from a folder of parts, so a kill loses at most one video.
    folder = out.with_name(out.name + ".parts") if single else out
    spec = encoder.spec(fps, frames_per_clip)
    for where in {folder, out}:
        old = read_store_spec(where) if where.exists() else None
        if old is not None and not old.same_features(spec):
            raise DataError(spec_path(where), f"store holds features of {old.describe()}, not {spec.describe()}; use another --out")
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(spec_path(folder), json.dumps(spec.to_dict(), indent=1))
    index = _indexed(folder)
    result = ExtractResult(out)
    paths = [Path(v) for v in videos]
    owner: dict[str, Path] = {}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("extract", total=len(paths))
        for path in paths:
            vid = path.stem
            bar.update(task, description=f"extract {path.name[:40]}")
            if vid in owner:
                result.failed.append((str(path), f"duplicate video id {vid!r} (also {owner[vid]})"))
            elif resume and vid in index and (folder / f"{vid}.npy").is_file():
                result.skipped.append(vid)
                owner[vid] = path
            else:
                owner[vid] = path
                try:
                    feats, duration = encode_video_file(path, encoder, fps, frames_per_clip, batch_size, max_clips)
                    write_store(folder, [(vid, feats)], fmt="npy")
                    with open(folder / INDEX_FILE, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"id": vid, "duration": round(duration, 4), "clips": int(feats.shape[0]),
                                             "source": path.name}) + "\n")
                    result.done.append(vid)
                except (MomentlocError, OSError, ValueError, RuntimeError) as err:
                    reason = str(err).split("\n")[0].removeprefix(f"{path}: ")
                    result.failed.append((str(path), reason[:300]))
            bar.advance(task)
    if single:
        keep = [v for v in owner if (folder / f"{v}.npy").is_file()]
        write_store(out, ((v, np.load(folder / f"{v}.npy")) for v in keep))
        write_text_atomic(spec_path(out), json.dumps(spec.to_dict(), indent=1))
    return result


def checkpoint_feature_spec(path: PathLike, cfg: Any = None) -> Optional[FeatureSpec]:
    """The feature spec a checkpoint carries, else the one beside the feature store its config names."""
    import torch

    try:  # mmap reads the small metadata without pulling every weight into memory
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # an old non-zip file cannot be mapped: read it the plain (checked) way
        from momentloc.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
    meta = ckpt.get("momentloc", {}) if isinstance(ckpt, dict) else {}
    if isinstance(meta.get("feature_spec"), dict):
        spec = FeatureSpec.from_dict(meta["feature_spec"], f"{path} (feature_spec)")
        check_sampling(spec.fps, spec.frames_per_clip, f"{path} (feature_spec)")
        return spec
    if cfg is not None and cfg.data.features:
        return read_store_spec(Path(cfg.data.features).expanduser())
    return None


def attach_feature_spec(checkpoint: PathLike, spec: Union[FeatureSpec, PathLike]) -> FeatureSpec:
    """Write a feature spec (or the one of a store) into a checkpoint, so it stands alone (atomic)."""
    from momentloc.checkpoint import atomic_save, load_checkpoint

    if not isinstance(spec, FeatureSpec):
        found = read_store_spec(spec)
        if found is None:
            raise DataError(spec, "this store has no feature spec (it was not written by momentloc extract)")
        spec = found
    ckpt = load_checkpoint(checkpoint)
    if int(ckpt["momentloc"]["config"]["data"]["feature_dim"]) != spec.dim:
        want = ckpt["momentloc"]["config"]["data"]["feature_dim"]
        raise CheckpointError(f"{checkpoint}: model takes features of dim {want}, spec says {spec.dim}")
    ckpt["momentloc"]["feature_spec"] = spec.to_dict()
    atomic_save(ckpt, checkpoint)
    return spec


def features_for_checkpoint(path: PathLike, cfg: Any, spec: Optional[FeatureSpec] = None,
                            encoder: Optional[FrameEncoder] = None,
                            max_clips: Optional[int] = DEFAULT_MAX_CLIPS) -> tuple[np.ndarray, float]:
    """Encode a raw video exactly as the checkpoint's training features were made; refuse a mismatch."""
    if spec is None and cfg.data.features:
        spec = read_store_spec(Path(cfg.data.features).expanduser())
    if spec is None:
        raise CheckpointError("the checkpoint carries no feature spec (encoder, fps, dim), so a raw video cannot be encoded "
                              "like its training features; extract features yourself and pass them instead")
    if spec.dim != int(cfg.data.feature_dim):
        raise CheckpointError(f"the model takes features of dim {cfg.data.feature_dim}, but its feature spec says {spec.describe()}")
    enc = check_encoder(spec, encoder) if encoder is not None else encoder_for_spec(spec)
    return encode_video_file(path, enc, spec.fps, spec.frames_per_clip, max_clips=max_clips)


def _colour(c: Union[str, Sequence[int]]) -> tuple[int, int, int]:
    if isinstance(c, str):
        if c not in COLOURS:
            raise MomentlocError(f"unknown colour {c!r}; known: {', '.join(COLOURS)}")
        return COLOURS[c]
    return tuple(int(v) for v in c)  # type: ignore[return-value]


Segments = Sequence[tuple[Union[str, Sequence[int]], float]]


def write_synthetic_video(path: PathLike, segments: Segments = (("red", 2.0), ("green", 2.0), ("blue", 2.0)), fps: float = 10.0,
                          size: tuple[int, int] = (64, 48), frame_times: Optional[Sequence[float]] = None) -> float:
    """Write a test video of flat colours changing at known times (``frame_times``: variable rate); returns its duration."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ends = np.cumsum([float(s) for _, s in segments])
    duration = float(ends[-1])
    times = list(frame_times) if frame_times is not None else [i / fps for i in range(int(round(duration * fps)))]
    codecs = {".webm": "libvpx", ".avi": "mpeg4", ".mkv": "libx264", ".mp4": "libx264", ".mov": "libx264"}
    codec = codecs.get(path.suffix.lower(), "mpeg4")
    if codec == "libx264" and "libx264" not in av.codecs_available:
        codec = "mpeg4"  # FFmpeg builds without x264 still have the native MPEG-4 encoder
    tb = Fraction(1, 1000)
    with atomic_path(path, suffix=f".tmp{path.suffix}") as tmp, \
            av.open(str(tmp), "w", format=None if path.suffix else "mp4") as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = tb
        # A small moving square makes the picture change within a segment, as real footage does.
        for i, t in enumerate(times):
            colour = _colour(segments[min(int(np.searchsorted(ends, t, side="right")), len(segments) - 1)][0])
            img = np.empty((size[1], size[0], 3), np.uint8)
            img[:] = colour
            x = int((t / max(duration, 1e-6)) * (size[0] - 8))
            img[2:10, x : x + 8] = 128
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return duration


_COLOUR_SENTENCES = ("the screen turns {c}.", "a {c} picture appears.", "everything is {c} for a while.")


def write_colour_dataset(root: PathLike, videos: int = 12, seed: int = 0, fps: float = 8.0,
                         size: tuple[int, int] = (64, 48), suffix: str = ".mp4") -> Path:
    """A small grounding set of colour videos with sentences per colour segment (ActivityNet json layout)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    splits: dict[str, dict[str, dict]] = {"train": {}, "val_1": {}, "val_2": {}}
    n_eval = max(1, videos // 5)
    for i in range(videos):
        vid = f"colours_{i:03d}"
        picks = rng.choice(len(names), size=int(rng.integers(3, 5)), replace=False)
        lengths = rng.integers(3, 8, size=len(picks)) / 2.0  # 1.5 s to 3.5 s, on half seconds
        segments = [(names[j], float(s)) for j, s in zip(picks, lengths)]
        duration = write_synthetic_video(root / "videos" / f"{vid}{suffix}", segments, fps=fps, size=size)
        starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        entry = {"duration": duration, "timestamps": [[float(s), float(s + n)] for s, n in zip(starts, lengths)],
                 "sentences": [_COLOUR_SENTENCES[int(rng.integers(len(_COLOUR_SENTENCES)))].format(c=c) for c, _ in segments]}
        split = "val_1" if i >= videos - 2 * n_eval and i < videos - n_eval else "val_2" if i >= videos - n_eval else "train"
        splits[split][vid] = entry
    for split, data in splits.items():
        write_text_atomic(root / f"{split}.json", json.dumps(data, indent=1))
    return root
