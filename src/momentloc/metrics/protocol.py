"""A dataset's evaluation protocol: which evaluator scores it, its headline metric, its ks and IoU thresholds.

One protocol serves validation (model selection monitors ``monitored``), ``momentloc eval`` (the table) and
``momentloc evaluate`` (a predictions file). The dataset table (``momentloc.data.formats.DATASETS``) names
each dataset's protocol; an experiment's ``eval:`` block changes ``ks``, ``iou_thresholds`` and ``monitor``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Optional, Sequence

from momentloc.errors import ConfigError
from momentloc.metrics import didemo as dd
from momentloc.metrics.moments import IOU_THRESHOLDS, TOP_KS, evaluate_moments
from momentloc.metrics.qvhighlights import (
    QVH_LENGTH_RANGES,
    QVH_MAX_PREDICTIONS,
    QVH_RECALL_THRESHOLDS,
    QVH_TOP_KS,
    qvh_moment_metrics,
)
from momentloc.types import Moment, Pair

if TYPE_CHECKING:
    from momentloc.config import ExperimentConfig

Evaluator = Literal["moments", "didemo", "qvhighlights"]
VAL_PREFIX = "val/"  # validation metrics are logged (and monitored) as val/<metric>
_RECALL = re.compile(r"^R(\d+)@(\d*\.?\d+)$")
_RANK = re.compile(r"^Rank@(\d+)$")


@dataclass(frozen=True)
class Protocol:
    """How one dataset is scored; ``monitor`` (default: ``headline``) is what model selection maximises."""

    evaluator: Evaluator
    headline: str
    ks: tuple[int, ...] = TOP_KS
    iou_thresholds: tuple[float, ...] = IOU_THRESHOLDS
    monitor: Optional[str] = None
    top_k: int = 5  # moments decoded per query for scoring, at least

    @property
    def decode_k(self) -> int:
        """Moments to decode per query: ``top_k``, or more when a ``ks`` asks for more (R10@m needs 10)."""
        return max(self.top_k, *self.ks)

    @property
    def monitored(self) -> str:
        """The metric model selection maximises."""
        return self.monitor or self.headline

    @property
    def monitor_key(self) -> str:
        """The logged name of the monitored metric (``val/R1@0.5``, ``val/Rank@1``, ``val/mAP``)."""
        return VAL_PREFIX + self.monitored

    def metric_names(self) -> tuple[str, ...]:
        """The headline metrics this protocol computes (no breakdowns, no counts)."""
        recall = tuple(f"R{n}@{m:g}" for n in self.ks for m in self.iou_thresholds)
        if self.evaluator == "didemo":
            return (*(f"Rank@{k}" for k in self.ks), "mIoU")
        if self.evaluator == "qvhighlights":
            spans = tuple(f"mAP-{name}" for name in QVH_LENGTH_RANGES)
            return ("mAP", "mAP@0.5", "mAP@0.75", *recall, "mIoU", *spans)
        return (*recall, "mIoU")

    def score(
        self, pairs: Sequence[Pair], moments: Sequence[Sequence[Moment]], breakdowns: bool = True, monitored: bool = True
    ) -> dict[str, float]:
        """Score ranked ``Moment`` lists (best first) against ``pairs`` (``breakdowns``: R@n only); with ``monitored``
        the monitored metric is computed too when ``ks`` / ``iou_thresholds`` leave it out."""
        out = self._score(pairs, moments, breakdowns)
        if monitored and self.monitored not in out:
            out.update(self._monitor_only()._score(pairs, moments, False))
        return out

    def _score(self, pairs: Sequence[Pair], moments: Sequence[Sequence[Moment]], breakdowns: bool) -> dict[str, float]:
        if len(pairs) != len(moments):
            raise ValueError(f"{len(moments)} prediction lists for {len(pairs)} pairs")
        if self.evaluator == "didemo":
            rankings = [dd.moments_to_ranking(row, p.duration) for row, p in zip(moments, pairs)]
            return dd.didemo_metrics(rankings, [dd.annotator_chunks(p) for p in pairs], self.ks)
        if self.evaluator == "qvhighlights":
            windows = [[(m.start, m.end, m.score) for m in row] for row in moments]
            return qvh_moment_metrics(windows, [p.windows for p in pairs], ks=self.ks, thresholds=self.iou_thresholds)
        return evaluate_moments(pairs, moments, self.ks, self.iou_thresholds, breakdowns)

    def _monitor_only(self) -> "Protocol":
        """This protocol computing just the recall it monitors (``with_options`` checked that it is one)."""
        n, m = _recall_of(self)  # type: ignore[misc]
        return replace(self, ks=(n,), iou_thresholds=(m,) if m is not None else self.iou_thresholds)

    def with_options(
        self,
        ks: Optional[Sequence[int]] = None,
        iou_thresholds: Optional[Sequence[float]] = None,
        monitor: Optional[str] = None,
    ) -> "Protocol":
        """This protocol with other ks / thresholds / monitor (None keeps its own).

        A monitor must be a metric of the protocol, or a recall (``R{n}@{m}``, ``Rank@{k}`` for DiDeMo) that
        ``score`` then computes too; anything else is a one-line ``ConfigError``.
        """
        out = replace(
            self,
            ks=tuple(int(k) for k in ks) if ks is not None else self.ks,
            iou_thresholds=tuple(float(t) for t in iou_thresholds) if iou_thresholds is not None else self.iou_thresholds,
            monitor=_metric_name(monitor) if monitor is not None else self.monitor,
        )
        if out.monitored not in out.metric_names() and _recall_of(out) is None:
            raise ConfigError(f"eval.monitor: {out.monitored!r} is not a metric of the {self.evaluator} protocol; "
                              f"expected one of {', '.join(out.metric_names())}")
        return out


def _metric_name(name: str) -> str:
    """A monitor as given (``Rank@1`` or ``val/Rank@1``) -> the metric name."""
    name = str(name).strip()
    return name[len(VAL_PREFIX):] if name.startswith(VAL_PREFIX) else name


def _recall_of(protocol: Protocol) -> Optional[tuple[int, Optional[float]]]:
    """(n, threshold) of a recall monitor the protocol can compute (threshold None for DiDeMo ranks); else None."""
    name = protocol.monitored
    if protocol.evaluator == "didemo":
        rank = _RANK.match(name)
        return (int(rank.group(1)), None) if rank and int(rank.group(1)) >= 1 else None
    recall = _RECALL.match(name)
    if recall and int(recall.group(1)) >= 1 and 0 < float(recall.group(2)) <= 1:
        return int(recall.group(1)), float(recall.group(2))
    return None


MOMENTS = Protocol("moments", headline="R1@0.5")
DIDEMO = Protocol("didemo", headline="Rank@1", ks=(1, 5), iou_thresholds=())
QVHIGHLIGHTS = Protocol(
    "qvhighlights", headline="mAP", ks=QVH_TOP_KS, iou_thresholds=QVH_RECALL_THRESHOLDS, top_k=QVH_MAX_PREDICTIONS
)


def dataset_protocol(dataset: str) -> Protocol:
    """The protocol the dataset table names for ``dataset``; R@n IoU=m for a dataset it does not know."""
    from momentloc.data.formats import find_dataset  # the table imports this module

    info = find_dataset(dataset)
    return info.protocol if info is not None else MOMENTS


def config_protocol(cfg: "ExperimentConfig") -> Protocol:
    """The dataset's protocol with the experiment's ``eval:`` block (and the older ``train.monitor``) applied."""
    base = dataset_protocol(cfg.data.dataset)
    monitor = cfg.eval.monitor
    legacy = cfg.train.monitor
    if legacy is not None and monitor is not None and _metric_name(legacy) != _metric_name(monitor):
        raise ConfigError(f"train.monitor ({legacy}) and eval.monitor ({monitor}) differ; give eval.monitor only")
    if monitor is None and legacy is not None and not (legacy == MOMENTS.monitor_key and base.evaluator == "didemo"):
        # train.monitor still works; its former default, R1@0.5, which older DiDeMo checkpoints carry, is no
        # DiDeMo metric and gives way to the dataset's headline.
        monitor = legacy
    return base.with_options(cfg.eval.ks, cfg.eval.iou_thresholds, monitor)
