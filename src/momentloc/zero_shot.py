"""Zero-shot moments without a trained grounder: CLIP image-text cosine per clip, turned into ranked stretches.

Each clip is scored by the cosine similarity of its image embedding and the
query's text embedding (one CLIP model, from a local weights file). The score
curve becomes moments with the stretch finder the simulated benchmark's
reference points use: clips whose score is above ``LEVEL`` of the way from the
curve's median to its maximum count towards a stretch, and the stretch with the
largest sum above that level (Kadane) is the moment. Further moments repeat the
search on the clips not yet taken. Nothing is trained, so expect coarse moments.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Union

import numpy as np

from momentloc.errors import DataError, MomentlocError
from momentloc.types import Moment

if TYPE_CHECKING:  # the video stack (PyAV) loads only when a video file is given
    from momentloc.encoders import FrameEncoder

# Evidence above median + LEVEL * (max - median) counts towards a stretch. Chosen once, before any method
# was measured, on a 1,600-video slice of the simulated Charades-STA at dim 256 (1,144 test pairs): oracle
# R1@0.5 86.7 at 0.25, 84.5 at 0.35, 82.4 at 0.5 (a 400-video slice: 89.4 / 90.8 / 82.4).
LEVEL = 0.25
MAX_TOP_K = 1000


def best_stretch(scores: np.ndarray) -> tuple[int, int]:
    """[i, j) of the stretch with the largest sum of ``scores`` (Kadane; at least one clip). ``-inf`` clips are never
    part of a stretch unless every clip is ``-inf``."""
    best, best_ij = -np.inf, (0, 1)
    run, start = 0.0, 0
    for j, s in enumerate(scores):
        if run <= 0:
            run, start = 0.0, j
        run += float(s)
        if run > best:
            best, best_ij = run, (start, j + 1)
    return best_ij


def _level(evidence: np.ndarray, level: float) -> float:
    med = float(np.median(evidence))
    return med + level * (float(evidence.max()) - med)


def stretch_moment(evidence: np.ndarray, duration: float, level: float = LEVEL) -> Moment:
    """The stretch whose evidence is above ``level`` of the way from its median to its maximum, in seconds; its score is
    the stretch's mean evidence."""
    return stretch_moments(evidence, duration, 1, level)[0]


def stretch_moments(evidence: np.ndarray, duration: float, top_k: int = 5, level: float = LEVEL) -> list[Moment]:
    """Up to ``top_k`` disjoint stretches, in the order found: the best stretch (as :func:`stretch_moment`), then the best
    among the clips not yet taken, and so on (the level stays the whole curve's). Seconds; score = mean evidence."""
    evidence = np.asarray(evidence)
    if not np.issubdtype(evidence.dtype, np.floating):
        evidence = evidence.astype(np.float64)
    if evidence.ndim != 1 or evidence.size == 0:
        raise ValueError(f"expected a non-empty score curve [T], got shape {evidence.shape}")
    T = len(evidence)
    above = evidence - _level(evidence, level)
    taken = np.zeros(T, dtype=bool)
    out: list[Moment] = []
    while len(out) < top_k and not taken.all():
        i, j = best_stretch(np.where(taken, -np.inf, above))
        out.append(Moment(i / T * duration, min(j / T * duration, duration), float(evidence[i:j].mean())))
        taken[i:j] = True
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def clip_text_scores(clip_features: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of every clip [T, D] with every sentence [Q, D] -> [Q, T]."""
    return _unit(np.asarray(text_embeddings, np.float64)) @ _unit(np.asarray(clip_features, np.float64)).T


def check_text_encoder(encoder: "FrameEncoder") -> None:
    """Refuse an encoder that cannot embed sentences (the tiny test encoder has no text tower)."""
    if not callable(getattr(encoder, "encode_text", None)):
        raise MomentlocError(f"encoder {encoder.name!r} has no text tower, so it cannot score a sentence; zero-shot "
                             "needs a CLIP encoder (--encoder clip --weights PATH)")


def clip_features(encoder: "FrameEncoder", video: Union[np.ndarray, str, Path], duration: Optional[float] = None,
                  fps: float = 1.0, frames_per_clip: int = 1, batch_size: int = 32,
                  max_clips: Optional[int] = None) -> tuple[np.ndarray, float]:
    """(clip image embeddings [T, D], duration s) of a video file, of frames uint8 [N, H, W, 3] sampled at ``fps``, or of
    clip features [T, D] already made by ``encoder`` (frames and features need ``duration`` unless ``fps`` gives it)."""
    from momentloc.video import DEFAULT_MAX_CLIPS, check_sampling, encode_video_file, pool_clips

    check_sampling(fps, frames_per_clip)
    limit = DEFAULT_MAX_CLIPS if max_clips is None else max_clips
    if isinstance(video, (str, Path)):
        path = Path(video)
        if not path.is_file():
            raise DataError(path, "video file not found")
        return encode_video_file(path, encoder, fps, frames_per_clip, batch_size=batch_size, max_clips=limit)
    arr = np.asarray(video)
    if arr.ndim == 4 and arr.shape[-1] == 3:  # frames
        if arr.shape[0] == 0:
            raise DataError("<frames>", "no frames")
        if arr.shape[0] > limit * frames_per_clip:
            raise DataError("<frames>", f"{arr.shape[0]} frames, more than {limit} clips")
        frames = np.ascontiguousarray(arr, dtype=np.uint8)
        feats = np.concatenate([np.asarray(encoder.encode(frames[s : s + batch_size]), np.float32)
                                for s in range(0, len(frames), batch_size)])
        feats = pool_clips(feats, frames_per_clip)
        dur = float(duration) if duration is not None else arr.shape[0] / fps
    elif arr.ndim == 2:  # clip features
        feats = arr.astype(np.float32)
        dur = float(duration) if duration is not None else arr.shape[0] * frames_per_clip / fps
    else:
        raise DataError("<video>", f"expected a video file, frames [N, H, W, 3] or clip features [T, D]; got shape {arr.shape}")
    if feats.shape[0] == 0 or feats.shape[0] > limit:
        raise DataError("<video>", f"{feats.shape[0]} clips; expected 1 to {limit}")
    if not np.isfinite(feats).all():
        raise DataError("<video>", "clip features hold NaN or infinite values")
    return feats, dur


def localize_zero_shot(encoder: "FrameEncoder", video: Union[np.ndarray, str, Path], queries: Union[str, Sequence[str]],
                       duration: Optional[float] = None, top_k: int = 5, fps: float = 1.0, frames_per_clip: int = 1,
                       batch_size: int = 32, level: float = LEVEL, max_clips: Optional[int] = None) -> list[list[Moment]]:
    """Top-k moments (seconds, in the order found) per query, from CLIP image-text similarity alone (untrained).

    ``video``: a video file (decoded at ``fps``), frames uint8 [N, H, W, 3] sampled at ``fps``, or clip features [T, D]
    from the same ``encoder``. ``encoder`` needs ``encode_text`` in the image embeddings' space (a CLIP encoder).
    """
    check_text_encoder(encoder)
    qs = [queries] if isinstance(queries, str) else list(queries)
    if not qs or any(not str(q).strip() for q in qs):
        raise MomentlocError("give at least one non-empty query")
    if not 1 <= top_k <= MAX_TOP_K:
        raise MomentlocError(f"top_k must be from 1 to {MAX_TOP_K}, got {top_k}")
    feats, dur = clip_features(encoder, video, duration, fps, frames_per_clip, batch_size, max_clips)
    if not (dur > 0 and np.isfinite(dur)):
        raise DataError("<video>", f"duration must be a positive number of seconds, got {dur}")
    text = np.asarray(encoder.encode_text(qs), np.float32)
    if text.shape != (len(qs), feats.shape[1]):
        raise MomentlocError(f"encoder {encoder.name!r} gave text embeddings of shape {text.shape}; "
                             f"expected ({len(qs)}, {feats.shape[1]}) to match its image embeddings")
    return [stretch_moments(curve, dur, top_k, level) for curve in clip_text_scores(feats, text)]
