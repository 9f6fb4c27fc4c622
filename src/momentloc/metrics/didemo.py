"""The DiDeMo protocol: 21 candidate segments of 5-s chunks, Rank@1, Rank@5 and mIoU.

Definition (Hendricks et al., "Localizing Moments in Video with Natural
Language", ICCV 2017; official evaluation: ``utils/eval.py`` in the
LisaAnne/LocalizingMoments repository):

* A video is cut into 5-s chunks; the candidates are the 21 segments
  (i, j), 0 <= i <= j <= 5, covering chunks i..j, in the official order: the six
  one-chunk segments (0,0)..(5,5), then every (i, j) with i < j in
  lexicographic order (``DIDEMO_SEGMENTS``).
* IoU between segments is measured on the inclusive chunk indices:
  |overlap chunks| / |union chunks| (equal to the IoU in seconds of
  [5i, 5(j+1)] windows).
* Each query has several annotators' segments (usually 4). To be robust to one
  outlier annotator, a prediction is scored against the best 3 of them: over
  every 3-annotator subset, average the per-annotator score and keep the best
  subset. For mIoU that is the mean of the 3 highest IoUs of the top-1 segment;
  for ranks it is the mean of the 3 lowest ranks that the annotators' segments
  take in the predicted ranking of all 21 segments.
* Rank@k: fraction of queries whose averaged rank is <= k. mIoU: mean of the
  averaged IoU. A query with fewer than 3 annotators averages over all of them.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from momentloc.metrics.iou import temporal_iou
from momentloc.types import Moment, Pair

CHUNK_SECONDS = 5.0
NUM_CHUNKS = 6
CONSENSUS = 3  # annotators kept per query: the best 3 (of usually 4)
DIDEMO_SEGMENTS: tuple[tuple[int, int], ...] = tuple(
    [(i, i) for i in range(NUM_CHUNKS)]
    + [(i, j) for i in range(NUM_CHUNKS) for j in range(i + 1, NUM_CHUNKS)]
)
SEGMENT_INDEX: dict[tuple[int, int], int] = {s: n for n, s in enumerate(DIDEMO_SEGMENTS)}
_SEG = np.asarray(DIDEMO_SEGMENTS, dtype=np.int64)  # [21, 2]


def segment_times(duration: Optional[float] = None) -> np.ndarray:
    """The 21 segments as [start, end] seconds ``[21, 2]``, capped at ``duration`` when given."""
    times = np.stack([_SEG[:, 0] * CHUNK_SECONDS, (_SEG[:, 1] + 1) * CHUNK_SECONDS], axis=1)
    if duration is not None:
        times = np.minimum(times, float(duration))
    return times


def window_to_chunks(start: float, end: float) -> tuple[int, int]:
    """An annotator window in seconds (chunk-aligned, maybe capped at the video end) -> (i, j) chunks."""
    # Tolerances absorb float noise from seconds = 5 * chunk conversions.
    i = int(math.floor(start / CHUNK_SECONDS + 1e-6))
    j = int(math.ceil(end / CHUNK_SECONDS - 1e-6)) - 1
    i = min(max(i, 0), NUM_CHUNKS - 1)
    j = min(max(j, i), NUM_CHUNKS - 1)
    return i, j


def nearest_segment(windows: Sequence[Sequence[float]] | np.ndarray, duration: Optional[float] = None) -> np.ndarray:
    """Index (into ``DIDEMO_SEGMENTS``) of the segment nearest each [start, end] second window ``[..., 2]``.

    Nearest = highest IoU in seconds with the segment (segments capped at
    ``duration`` when given, since a prediction clipped to a 27-s video that
    ends at 27 means "to the last chunk"); ties go to the smaller summed
    boundary distance, then to the lower index.
    """
    w = np.asarray(windows, dtype=np.float64)
    segs = segment_times(duration)
    iou = temporal_iou(w[..., None, :], segs)  # [..., 21]
    dist = np.abs(w[..., None, 0] - segs[:, 0]) + np.abs(w[..., None, 1] - segs[:, 1])
    # Lexicographic (max IoU, min distance): exact IoU ties are common on chunk grids.
    best = iou.max(axis=-1, keepdims=True)
    dist = np.where(iou >= best - 1e-12, dist, np.inf)
    return dist.argmin(axis=-1)


def chunk_iou(pred: Sequence[int] | np.ndarray, gt: Sequence[int] | np.ndarray) -> np.ndarray:
    """IoU on inclusive chunk indices of (i, j) segments ``pred[..., 2]`` and ``gt[..., 2]`` (broadcasting).

    Segment (i, j) covers chunks i..j, the window [i, j + 1] in chunk units: exact small integers, so the
    IoU is that of the official script (|overlap chunks| / |union chunks|) to the last bit.
    """
    p = np.asarray(pred, dtype=np.float64) + (0.0, 1.0)
    g = np.asarray(gt, dtype=np.float64) + (0.0, 1.0)
    return temporal_iou(p, g)


def annotator_chunks(pair: Pair) -> list[tuple[int, int]]:
    """The (i, j) chunks of each annotator's window of a pair (its consensus windows when it has no annotators)."""
    wins = pair.annotator_windows or pair.windows
    if not wins:
        raise ValueError(f"query {pair.query_id}: no DiDeMo annotator windows")
    return [window_to_chunks(s, e) for s, e in wins]


def query_scores(ranking: Sequence[int], annotators: Sequence[tuple[int, int]]) -> tuple[float, float]:
    """(averaged rank, averaged IoU) of one query under the best-3-annotators rule.

    ``ranking`` holds segment indices, best first; a segment absent from it
    has rank infinity. An empty ranking scores (inf, 0).
    """
    if not annotators:
        raise ValueError("a DiDeMo query needs at least one annotator segment")
    rank_of = {int(s): r + 1 for r, s in reversed(list(enumerate(ranking)))}
    ranks = sorted(rank_of.get(SEGMENT_INDEX[tuple(a)], math.inf) for a in annotators)
    keep = min(CONSENSUS, len(annotators))
    avg_rank = float(np.mean(ranks[:keep]))
    if len(ranking) == 0:
        return avg_rank, 0.0
    top = DIDEMO_SEGMENTS[int(ranking[0])]
    ious = np.sort(chunk_iou(np.asarray(top)[None], np.asarray(annotators)))[::-1]
    return avg_rank, float(ious[:keep].mean())


def didemo_metrics(
    rankings: Sequence[Sequence[int]],
    annotators: Sequence[Sequence[tuple[int, int]]],
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """``"Rank@1"``, ``"Rank@5"``, ``"mIoU"`` in percent (+ ``"n"``) of ranked segment indices per query."""
    if len(rankings) != len(annotators):
        raise ValueError(f"{len(rankings)} rankings for {len(annotators)} queries")
    scores = np.array([query_scores(r, a) for r, a in zip(rankings, annotators)], dtype=np.float64).reshape(-1, 2)
    out: dict[str, float] = {}
    for k in ks:
        out[f"Rank@{k}"] = 100.0 * float((scores[:, 0] <= k).mean()) if len(scores) else float("nan")
    out["mIoU"] = 100.0 * float(scores[:, 1].mean()) if len(scores) else float("nan")
    out["n"] = len(scores)
    return out


def oracle_ranking(annotators: Sequence[tuple[int, int]]) -> list[int]:
    """The best ranking of all 21 segments for one query: the metric's upper bound.

    First the segment with the highest best-3 IoU (ties: the one most
    annotators chose), then the other annotated segments by how many chose
    them, then the rest in index order.
    """
    ann = np.asarray(annotators)
    keep = min(CONSENSUS, len(ann))
    ious = np.sort(chunk_iou(_SEG[:, None, :], ann[None, :, :]), axis=1)[:, ::-1][:, :keep].mean(axis=1)
    votes = np.zeros(len(DIDEMO_SEGMENTS), dtype=np.int64)
    for a in annotators:
        votes[SEGMENT_INDEX[tuple(a)]] += 1
    first = max(range(len(DIDEMO_SEGMENTS)), key=lambda s: (round(float(ious[s]), 12), votes[s], -s))
    rest = sorted((s for s in range(len(DIDEMO_SEGMENTS)) if s != first), key=lambda s: (-votes[s], s))
    return [first, *rest]


def complete_ranking(ranking: Sequence[int]) -> list[int]:
    """Drop repeats and append the segments a ranking lacks, nearest (chunk IoU) to its top-1 first.

    An empty ranking stays empty: it is a miss, not a guess.
    """
    seen: list[int] = []
    for s in ranking:
        if int(s) not in seen:
            seen.append(int(s))
    if not seen:
        return []
    top = _SEG[seen[0]]
    closeness = chunk_iou(top[None], _SEG)
    rest = sorted((s for s in range(len(DIDEMO_SEGMENTS)) if s not in seen), key=lambda s: (-closeness[s], s))
    return seen + rest


def moments_to_ranking(moments: Sequence[Moment], duration: Optional[float] = None) -> list[int]:
    """Ranked moments in seconds (best first) -> a full ranking of the 21 segment indices ([] for none)."""
    if not moments:
        return []
    idx = nearest_segment([(m.start, m.end) for m in moments], duration)
    return complete_ranking([int(i) for i in idx])
