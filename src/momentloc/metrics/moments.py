"""The moment-localization metrics: R@n IoU=m, mIoU, breakdowns by moment and video length.

Conventions (see docs/metrics.md):

* IoU of two windows [s1, e1], [s2, e2] in seconds is |intersection| / |union|;
  a union of zero length gives IoU 0.
* A prediction **hits** at threshold m when IoU >= m (some papers use >).
* A query with several ground-truth windows is scored against the window that
  matches each prediction best (the maximum IoU over its windows).
* R@n IoU=m: fraction of queries with a hit among the first n predictions of
  its ranked list (fewer than n predictions: those there are).
* mIoU: mean over queries of the top-1 prediction's best IoU (no prediction: 0).

Every metric is returned in percent as a plain ``dict[str, float]``.
IoU is ``momentloc.metrics.iou.temporal_iou``. DiDeMo and QVHighlights have
their own protocols in ``momentloc.metrics.didemo`` and ``momentloc.metrics.qvhighlights``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from momentloc.metrics.iou import pairwise_iou
from momentloc.types import Moment, Pair

IOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
TOP_KS: tuple[int, ...] = (1, 5)
# Moment length as a fraction of its video: short <= 0.1 < medium <= 0.3 < long.
MOMENT_LENGTH_BINS: tuple[float, float] = (0.1, 0.3)
# Video length in seconds: short <= 60 < medium <= 180 < long.
VIDEO_LENGTH_BINS: tuple[float, float] = (60.0, 180.0)
BIN_NAMES: tuple[str, str, str] = ("short", "medium", "long")


def pad_windows(rows: Sequence[Sequence[Sequence[float]]], width: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-query window lists -> ``(windows [Q, W, 2], valid [Q, W])``, first ``width`` kept."""
    lengths = [len(r) if width is None else min(len(r), width) for r in rows]
    w = max(lengths, default=0)
    w = max(w, 1)  # keep a real axis so that reductions over it are defined
    out = np.zeros((len(rows), w, 2), dtype=np.float64)
    valid = np.zeros((len(rows), w), dtype=bool)
    for q, (row, n) in enumerate(zip(rows, lengths)):
        if n:
            out[q, :n] = np.asarray([tuple(x)[:2] for x in row[:n]], dtype=np.float64)
            valid[q, :n] = True
    return out, valid


def ranked_best_iou(
    predictions: Sequence[Sequence[Sequence[float]]],
    ground_truth: Sequence[Sequence[Sequence[float]]],
    k: Optional[int] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each query and each of its first ``k`` predictions, the max IoU over its GT windows.

    Returns ``(iou [Q, K], valid [Q, K])``; invalid slots (no prediction) hold 0.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction lists for {len(ground_truth)} queries")
    pred, pred_valid = pad_windows(predictions, k)
    gt, gt_valid = pad_windows(ground_truth)
    iou = pairwise_iou(pred, gt)  # [Q, K, G]
    iou = np.where(gt_valid[:, None, :], iou, 0.0).max(axis=-1)
    return np.where(pred_valid, iou, 0.0), pred_valid


def localization_metrics(
    predictions: Sequence[Sequence[Sequence[float]]],
    ground_truth: Sequence[Sequence[Sequence[float]]],
    ks: Sequence[int] = TOP_KS,
    thresholds: Sequence[float] = IOU_THRESHOLDS,
) -> dict[str, float]:
    """R@n IoU=m (keys ``"R{n}@{m}"``) and top-1 ``"mIoU"`` in percent, plus the query count ``"n"``.

    ``predictions[q]`` is query q's ranked list of (start, end[, score]) windows,
    best first; ``ground_truth[q]`` its (start, end) windows.
    """
    out: dict[str, float] = {}
    if len(ground_truth) == 0:
        for n in ks:
            for m in thresholds:
                out[f"R{n}@{m:g}"] = float("nan")
        out["mIoU"] = float("nan")
        out["n"] = 0
        return out
    kmax = max(ks)
    iou, valid = ranked_best_iou(predictions, ground_truth, kmax)
    for n in ks:
        top = iou[:, :n]
        for m in thresholds:
            hit = ((top >= m) & valid[:, :n]).any(axis=1)
            out[f"R{n}@{m:g}"] = 100.0 * float(hit.mean())
    out["mIoU"] = 100.0 * float(iou[:, 0].mean())
    out["n"] = len(ground_truth)
    return out


def length_bin(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index per value: 0 if v <= edges[0], 1 if v <= edges[1], ..., len(edges) otherwise."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="left")


def breakdown_metrics(
    predictions: Sequence[Sequence[Sequence[float]]],
    pairs: Sequence[Pair],
    ks: Sequence[int] = TOP_KS,
    thresholds: Sequence[float] = IOU_THRESHOLDS,
    moment_bins: Sequence[float] = MOMENT_LENGTH_BINS,
    video_bins: Sequence[float] = VIDEO_LENGTH_BINS,
    names: Sequence[str] = BIN_NAMES,
) -> dict[str, float]:
    """The metrics per moment-length bin (``"moment-short/R1@0.5"``) and per video-length bin (``"video-long/mIoU"``).

    Moment length is that of the primary (first) window divided by the video
    duration; bins are right-closed (``short`` means fraction <= ``moment_bins[0]``).
    """
    if len(names) != len(moment_bins) + 1 or len(names) != len(video_bins) + 1:
        raise ValueError("need one bin name more than bin edges")
    gts = [p.windows for p in pairs]
    dur = np.array([max(p.duration, 1e-9) for p in pairs], dtype=np.float64)
    first = np.array([p.windows[0] if p.windows else (0.0, 0.0) for p in pairs], dtype=np.float64).reshape(-1, 2)
    frac = (first[:, 1] - first[:, 0]) / dur
    out: dict[str, float] = {}
    for prefix, bins in (("moment", length_bin(frac, moment_bins)), ("video", length_bin(dur, video_bins))):
        for b, name in enumerate(names):
            idx = np.flatnonzero(bins == b)
            sub = localization_metrics([predictions[i] for i in idx], [gts[i] for i in idx], ks, thresholds)
            for key, value in sub.items():
                out[f"{prefix}-{name}/{key}"] = value
    return out


def evaluate_moments(
    pairs: Sequence[Pair],
    moments: Sequence[Sequence[Moment]],
    ks: Sequence[int] = TOP_KS,
    thresholds: Sequence[float] = IOU_THRESHOLDS,
    breakdowns: bool = True,
) -> dict[str, float]:
    """Score ranked ``Moment`` lists (best first, as ``decode`` returns them) against ``pairs``."""
    if len(pairs) != len(moments):
        raise ValueError(f"{len(moments)} prediction lists for {len(pairs)} pairs")
    preds = [[(m.start, m.end) for m in row] for row in moments]
    out = localization_metrics(preds, [p.windows for p in pairs], ks, thresholds)
    if breakdowns:
        out.update(breakdown_metrics(preds, pairs, ks, thresholds))
    return out
