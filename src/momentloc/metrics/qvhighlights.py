"""QVHighlights metrics: moment retrieval (mAP, R1) and highlight detection (HL-mAP, HIT@1).

Definitions follow the QVHighlights paper (Lei et al., "QVHighlights:
Detecting Moments and Highlights in Videos via Natural Language Queries",
NeurIPS 2021) and its official evaluation, ``standalone_eval/eval.py`` and
``standalone_eval/utils.py`` in the jayleicn/moment_detr repository:

Moment retrieval (all ground-truth windows of a query count):

* per-query average precision at each IoU threshold t in 0.50:0.05:0.95 over
  the query's first 10 predictions (by score, highest first): each prediction
  in turn is a true positive when an unmatched GT window has IoU >= t with it
  (it takes the unmatched one with the highest IoU), otherwise a false
  positive. AP is the area under the precision-recall curve with precision
  made monotone (all-points interpolation, the VOC 2011 / ActivityNet rule),
  recall = true positives / number of GT windows.
* ``mAP`` = mean over thresholds of the mean over queries; ``mAP@0.5``,
  ``mAP@0.75`` at single thresholds; ``mAP-short/middle/long`` keep only GT
  windows of length in (0, 10], (10, 30], (30, 150] s and the queries that
  still have one.
* ``R1@t``: the top prediction hits when its IoU with the best-matching GT
  window is >= t.

Highlight detection ("Very Good": an annotator's clip score >= 4):

* For each query and each of the 3 annotators, a clip is positive when that
  annotator scored it >= the threshold (clips without a score are 0). AP of
  the predicted clip saliency against those labels (ties in the predicted
  scores form one step), averaged over the 3 annotators and the queries; an
  annotator with no positive clip gives AP 0.
* ``HIT@1``: the clip with the highest predicted score (first on ties) is a hit
  when at least one annotator marks it positive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from momentloc.errors import DataError
from momentloc.metrics.iou import pairwise_iou
from momentloc.metrics.moments import localization_metrics

QVH_IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
QVH_TOP_KS: tuple[int, ...] = (1,)
QVH_RECALL_THRESHOLDS: tuple[float, ...] = (0.5, 0.7)  # the R1@t the official evaluator reports
QVH_MAX_PREDICTIONS = 10
QVH_CLIP_SECONDS = 2.0
QVH_LENGTH_RANGES: dict[str, tuple[float, float]] = {"short": (0.0, 10.0), "middle": (10.0, 30.0), "long": (30.0, 150.0)}
VERY_GOOD = 4  # saliency scores are 0 (Very Bad) .. 4 (Very Good)

Window = Sequence[float]


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Area under the PR curve after making precision non-increasing in recall (all points); batched over leading axes."""
    prec = np.asarray(precision, dtype=np.float64)
    rec = np.asarray(recall, dtype=np.float64)
    lead = prec.shape[:-1]
    prec = np.concatenate([np.zeros(lead + (1,)), prec, np.zeros(lead + (1,))], axis=-1)
    rec = np.concatenate([np.zeros(lead + (1,)), rec, np.ones(lead + (1,))], axis=-1)
    prec = np.flip(np.maximum.accumulate(np.flip(prec, -1), axis=-1), -1)
    # Each recall step is weighted by the interpolated precision at its right end.
    return np.sum(np.diff(rec, axis=-1) * prec[..., 1:], axis=-1)


def detection_ap(
    pred_windows: Sequence[Window],
    pred_scores: Sequence[float],
    gt_windows: Sequence[Window],
    thresholds: Sequence[float] = QVH_IOU_THRESHOLDS,
) -> np.ndarray:
    """Per-threshold AP ``[T]`` of one query's scored windows against its GT windows."""
    thr = np.asarray(thresholds, dtype=np.float64)
    n_pred, n_gt = len(pred_windows), len(gt_windows)
    if n_pred == 0 or n_gt == 0:
        return np.zeros(len(thr))
    # Stable sort: equal scores keep the file order.
    order = np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")
    pred = np.asarray(pred_windows, dtype=np.float64)[order, :2]
    iou = pairwise_iou(pred, np.asarray(gt_windows, dtype=np.float64)[:, :2])  # [P, G]
    taken = np.zeros((len(thr), n_gt), dtype=bool)
    tp = np.zeros((len(thr), n_pred), dtype=bool)
    rows = np.arange(len(thr))
    for p in range(n_pred):
        eligible = (iou[p][None, :] >= thr[:, None]) & ~taken  # [T, G]
        cand = np.where(eligible, iou[p][None, :], -1.0).argmax(axis=1)
        hit = eligible[rows, cand]
        tp[:, p] = hit
        taken[rows[hit], cand[hit]] = True
    ctp = np.cumsum(tp, axis=1)
    precision = ctp / np.arange(1, n_pred + 1)[None, :]
    recall = ctp / n_gt
    return interpolated_ap(precision, recall)


def _in_range(windows: Sequence[Window], lo: float, hi: float) -> list[Window]:
    return [w for w in windows if lo < (w[1] - w[0]) <= hi]


def qvh_moment_metrics(
    predictions: Sequence[Sequence[Window]],
    ground_truth: Sequence[Sequence[Window]],
    max_predictions: Optional[int] = QVH_MAX_PREDICTIONS,
    length_ranges: Optional[Mapping[str, tuple[float, float]]] = QVH_LENGTH_RANGES,
    ks: Sequence[int] = QVH_TOP_KS,
    thresholds: Sequence[float] = QVH_RECALL_THRESHOLDS,
) -> dict[str, float]:
    """``mAP``, ``mAP@0.5``, ``mAP@0.75``, ``R1@0.5``, ``R1@0.7``, ``mIoU`` (percent) and ``n``.

    ``predictions[q]`` holds [start, end, score] windows (any order; sorted here
    by score); ``ground_truth[q]`` the query's [start, end] windows. ``ks`` and
    ``thresholds`` choose the R{n}@{t} columns, counted on the score-sorted list.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction lists for {len(ground_truth)} queries")
    ranked = []
    for row in predictions:
        row = [tuple(w) for w in row]
        order = np.argsort(-np.asarray([w[2] for w in row], dtype=np.float64), kind="stable") if row else []
        ranked.append([row[i] for i in order][:max_predictions])

    def ap_table(gts: Sequence[Sequence[Window]], preds: Sequence[Sequence[Window]]) -> np.ndarray:
        table = [detection_ap([w[:2] for w in p], [w[2] for w in p], g) for p, g in zip(preds, gts)]
        return np.asarray(table, dtype=np.float64).reshape(-1, len(QVH_IOU_THRESHOLDS))

    out: dict[str, float] = {}
    aps = ap_table(ground_truth, ranked)
    per_thr = aps.mean(axis=0) if len(aps) else np.full(len(QVH_IOU_THRESHOLDS), np.nan)
    out["mAP"] = 100.0 * float(per_thr.mean())
    out["mAP@0.5"] = 100.0 * float(per_thr[QVH_IOU_THRESHOLDS.index(0.5)])
    out["mAP@0.75"] = 100.0 * float(per_thr[QVH_IOU_THRESHOLDS.index(0.75)])
    out.update(localization_metrics(ranked, ground_truth, ks, thresholds))  # R{n}@{t}, mIoU, n
    for name, (lo, hi) in (length_ranges or {}).items():
        kept = [(p, _in_range(g, lo, hi)) for p, g in zip(ranked, ground_truth)]
        kept = [(p, g) for p, g in kept if g]
        sub = ap_table([g for _, g in kept], [p for p, _ in kept])
        out[f"mAP-{name}"] = 100.0 * float(sub.mean()) if len(sub) else float("nan")
    return out


def saliency_ap(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP of one annotator's binary clip labels given predicted clip scores (ties are one step).

    The mean, over the distinct recall levels reached, of the best precision
    at that recall or higher; 0 when no clip is positive, 1 when all are.
    """
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = y.sum()
    if n_pos == 0:
        return 0.0
    if n_pos == len(y):
        return 1.0
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    # One precision-recall point per distinct score: tied clips enter together.
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    best = np.maximum.accumulate(precision[::-1])[::-1]
    # The first (highest-score) point of each recall level sees every point at that level or beyond.
    level_start = np.r_[0, np.flatnonzero(recall[1:] != recall[:-1]) + 1]
    level_start = level_start[recall[level_start] > 0]
    return float(best[level_start].mean())


def load_qvh_saliency(path: Union[str, Path]) -> dict[str, np.ndarray]:
    """Per-annotator clip scores from a QVHighlights release jsonl: ``{str(qid): [num_clips, 3]}``."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                num_clips = int(float(row["duration"]) / QVH_CLIP_SECONDS)
                ids = np.asarray(row.get("relevant_clip_ids", []), dtype=np.int64).reshape(-1)
                # A relevant clip past int(duration / 2) would be lost; keep it instead.
                full = np.zeros((max(num_clips, int(ids.max(initial=-1)) + 1), 3), dtype=np.float64)
                if "saliency_scores" in row:
                    full[ids] = np.asarray(row["saliency_scores"], dtype=np.float64).reshape(len(ids), 3)
                out[str(row["qid"])] = full
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise DataError(path, f"not a QVHighlights annotation row ({exc})", f"line {n}") from None
    return out


def qvh_highlight_metrics(
    pred_saliency: Sequence[Optional[Sequence[float]]],
    gt_scores: Sequence[np.ndarray],
    min_score: float = VERY_GOOD,
) -> dict[str, float]:
    """``HL-mAP`` and ``HL-HIT@1`` in percent for predicted clip scores against ``[num_clips, 3]`` annotator scores.

    Predictions longer than the video are cut, shorter ones padded with 0; a
    missing prediction (None) scores AP 0 and no hit.
    """
    aps: list[float] = []
    hits: list[float] = []
    for pred, gt in zip(pred_saliency, gt_scores):
        binary = (np.asarray(gt) >= min_score).astype(np.float64)
        if pred is None or len(pred) == 0:
            aps.extend([0.0] * binary.shape[1])
            hits.append(0.0)
            continue
        p = np.zeros(len(binary), dtype=np.float64)
        n = min(len(binary), len(pred))
        p[:n] = np.asarray(pred, dtype=np.float64)[:n]
        aps.extend(saliency_ap(binary[:, a], p) for a in range(binary.shape[1]))
        top = int(np.argmax(np.asarray(pred, dtype=np.float64)))
        hits.append(float(binary[top].max()) if top < len(binary) else 0.0)
    return {
        "HL-mAP": 100.0 * float(np.mean(aps)) if aps else float("nan"),
        "HL-HIT@1": 100.0 * float(np.mean(hits)) if hits else float("nan"),
    }
