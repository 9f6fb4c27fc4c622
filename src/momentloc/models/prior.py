"""The prior-only baseline: moment-length and position statistics of train, no video, no query."""

from __future__ import annotations

from typing import Sequence

import torch

from momentloc.metrics.iou import hull_iou
from momentloc.models.base import GroundingModel, InputSpec, ModelConfig, Output
from momentloc.registry import register_model
from momentloc.types import Batch, Moment


class PriorConfig(ModelConfig):
    """Grid resolution of the (start, end) histogram and the IoU the prior aims at."""

    bins: int = 20
    target_iou: float = 0.5


@register_model("prior")
class PriorBaseline(GroundingModel):
    """Counts training windows on a grid of normalised (start, end) and returns the
    windows that would have hit the most of them at ``target_iou`` — the best a
    model can do that looks at neither the video nor the sentence."""

    supervision = "full"
    Config = PriorConfig

    def __init__(self, cfg: PriorConfig, spec: InputSpec) -> None:
        super().__init__(cfg, spec)
        g = cfg.bins
        idx = torch.arange(g)
        s, e = torch.meshgrid(idx, idx, indexing="ij")
        keep = s <= e
        cells = torch.stack([s[keep], e[keep] + 1], 1).float() / g  # [C, 2] fractions
        self.register_buffer("cells", cells)
        self.register_buffer("counts", torch.zeros(len(cells)))
        # Lightning needs one parameter to build an optimiser; it never gets a gradient signal.
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch: Batch) -> Output:
        """The same ranked windows for every pair."""
        return Output(tensors={"scores": self._cell_scores()})

    def _cell_scores(self) -> torch.Tensor:
        # hull_iou, not temporal_iou: on this grid IoU == target_iou is the common case, and the way each such tie
        # falls defines the prior's windows; temporal_iou rounds differently and moves them (metrics.iou).
        hit = hull_iou(self.cells[:, None, :], self.cells[None, :, :]) >= self.cfg.target_iou
        return hit.float() @ self.counts

    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """Accumulate the batch's windows into the histogram (a zero loss)."""
        if self.training and batch.windows is not None:
            frac = (batch.windows / batch.duration[:, None]).clamp(0, 1)
            g = self.cfg.bins
            s = (frac[:, 0] * g).floor().clamp(0, g - 1)
            e = (frac[:, 1] * g).ceil().clamp(1, g) - 1
            e = torch.maximum(e, s)
            cell = torch.nonzero(
                (self.cells[None, :, 0] == (s / g)[:, None]) & (self.cells[None, :, 1] == ((e + 1) / g)[:, None])
            )[:, 1]
            self.counts += torch.bincount(cell, minlength=len(self.cells)).float()
        return {"total": self.anchor.sum() * 0.0}

    def decode(self, out: Output, batch: Batch, k: int = 5) -> list[list[Moment]]:
        """Top-k prior windows (greedy, skipping near-duplicates) scaled to each duration."""
        # One copy to the host: the ranking is the same for every query, and reading it cell by cell from a
        # GPU would wait for the device at every number.
        scores = out["scores"].float().cpu()
        cells = self.cells.cpu().tolist()
        chosen: list[int] = []
        for i in torch.argsort(scores, descending=True, stable=True).tolist():
            if all(_iou(cells[i], cells[j]) < 0.5 for j in chosen):
                chosen.append(i)
            if len(chosen) == k:
                break
        values, total = scores.tolist(), max(float(scores.max()), 1.0)
        return [[Moment(cells[i][0] * d, cells[i][1] * d, values[i] / total) for i in chosen] for d in batch.duration.tolist()]


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two grid cells for the near-duplicate check, in float64 (as ``_cell_scores``: ``hull_iou``)."""
    return float(hull_iou(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))


def fit_prior_moments(train_pairs, eval_pairs, k: int = 5, bins: int = 20) -> list[list[Moment]]:
    """Fit the prior on ``train_pairs`` (annotations only) and rank windows for ``eval_pairs``."""
    model = PriorBaseline(PriorConfig(bins=bins), InputSpec(1, 1, 1, None))
    model.train()
    windows = torch.tensor([p.window for p in train_pairs], dtype=torch.float32)
    duration = torch.tensor([p.duration for p in train_pairs], dtype=torch.float32)
    model.loss(Output(), _label_batch(duration, windows))
    batch = _label_batch(torch.tensor([p.duration for p in eval_pairs], dtype=torch.float32), None)
    return model.decode(model(batch), batch, k)


def _label_batch(duration: torch.Tensor, windows) -> Batch:
    z = torch.zeros(len(duration), 1)
    return Batch(video=z, video_mask=z.bool(), words=z, word_mask=z.bool(), word_ids=z.long(), duration=duration,
                 video_group=z.long(), index=torch.arange(len(duration)), windows=windows,
                 num_videos=1 if len(duration) else 0)
