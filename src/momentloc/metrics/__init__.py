"""Evaluation: temporal IoU, the metrics of each protocol, prediction files and the standalone evaluator.

* ``iou``: ``temporal_iou`` / ``pairwise_iou``, the one IoU every module uses.
* ``moments``: R@n IoU=m, mIoU and breakdowns (Charades-STA, TACoS, ActivityNet Captions, the synthetic sets).
* ``didemo``: DiDeMo's Rank@k and mIoU over 21 segments. ``qvhighlights``: QVHighlights' mAP and highlights.
* ``protocol``: a dataset's protocol (evaluator, headline metric, ks, IoU thresholds) and the ``eval:`` block.
* ``predictions``: reading and writing prediction files. ``evaluator``: ``evaluate_predictions``.
* ``table``: metrics as a text table.

Conventions are in docs/metrics.md. The most used names are importable from here.
"""

from momentloc.metrics.iou import pairwise_iou, temporal_iou
from momentloc.metrics.moments import IOU_THRESHOLDS, TOP_KS, breakdown_metrics, evaluate_moments, localization_metrics
from momentloc.metrics.table import format_table

__all__ = [
    "IOU_THRESHOLDS",
    "TOP_KS",
    "breakdown_metrics",
    "evaluate_moments",
    "format_table",
    "localization_metrics",
    "pairwise_iou",
    "temporal_iou",
]
