"""Within-scale (Eq. 11) and cross-scale (Eq. 12) contrastive objectives over a feature pyramid.

Both read the query-independent pyramid a model exposes: ``clips`` (the
level-0 features Z^0), ``levels`` (Z^1..Z^L, list of [B,T_l,H]) with
``level_masks`` and optionally ``level_strides``. Per video in the batch one
query is drawn (the query-centric sampling of Eq. 10); its moment's points at
every level (centre sampling) are the positives P(l), and as many points of the
same video outside that moment are drawn as negatives N(l).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F

from momentloc.models.base import GroundingModel, Output, first_row_per_video
from momentloc.objectives.base import Objective, ObjectiveConfig
from momentloc.registry import register_objective
from momentloc.types import Batch

_CACHE_KEY = "multiscale_contrast_sample"


class ContrastConfig(ObjectiveConfig):
    """Shared parameters of the two contrastive terms."""

    # The paper's Eqs. 11-12: raw dot products (temperature 1), summed over every pair. Not in the
    # paper (options): "cosine" unit-normalises first, which keeps exp() bounded; "mean" averages
    # each term over its pairs.
    similarity: Literal["cosine", "dot"] = "dot"
    temperature: float = 1.0
    center_radius: float = 1.5  # alpha of centre sampling, in strides of each level
    negatives_per_positive: float = 1.0  # |N(l)| = this * |P(l)| (the paper: equal sizes)
    reduction: Literal["mean", "sum"] = "sum"
    # Control (deliberately wrong): each pyramid level's positives and negatives are located as if it
    # were another level (a random cyclic permutation of the levels' strides at every step), so the
    # contrast no longer pairs a level with its own scale.
    shuffle_levels: bool = False


@dataclass
class LevelSample:
    """Positives and negatives of one level for the sampled pair of each video."""

    feats: torch.Tensor  # [V,T_l,H]
    pos: torch.Tensor  # [V,T_l] bool
    neg: torch.Tensor  # [V,T_l] bool


def sample_query_per_video(group: torch.Tensor, num_videos: Optional[int] = None) -> torch.Tensor:
    """Eq. 10: one uniformly drawn batch row per distinct ``video_group`` value (sorted by video)."""
    return first_row_per_video(group, torch.randperm(group.shape[0]).to(group.device), num_videos)[0]


def _centre_sampling(
    pos_frac: torch.Tensor, mask: torch.Tensor, window: torch.Tensor, half_width: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(positives, outside) [V,T_l]: points within ``half_width`` of the moment centre and inside it."""
    start, end = window[:, :1], window[:, 1:]
    centre = 0.5 * (start + end)
    # Strict bounds, as in the model's own targets.
    inside = (pos_frac > start) & (pos_frac < end)
    near = (pos_frac - centre).abs() < half_width
    positive = inside & near & mask
    # A moment shorter than one step of this level still gets its nearest point.
    dist = (pos_frac - centre).abs().masked_fill(~mask, float("inf"))
    nearest = F.one_hot(dist.argmin(1), mask.shape[1]).bool() & mask
    positive = torch.where(positive.any(1, keepdim=True), positive, nearest)
    return positive, ~inside & ~positive & mask


def _draw_negatives(outside: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Uniformly draw ``count`` [V] points per row among ``outside`` [V,T]."""
    noise = torch.rand(outside.shape).to(outside.device).masked_fill(~outside, -1.0)
    rank = noise.argsort(1, descending=True).argsort(1)
    return (rank < count[:, None]) & outside


def shuffled_strides(strides: list[int]) -> list[int]:
    """The control's level order: a random cyclic permutation, so no level keeps its own stride."""
    order = torch.randperm(len(strides)).tolist()
    out = list(strides)
    for a, b in zip(order, order[1:] + order[:1]):
        out[a] = strides[b]
    return out


def build_samples(out: Output, batch: Batch, cfg: ContrastConfig) -> tuple[LevelSample, list[LevelSample]]:
    """Positives / negatives at level 0 (``clips``) and at every pyramid level, one pair per video."""
    if batch.windows is None:
        raise ValueError("multi-scale contrast needs ground-truth windows (full supervision)")
    # Both objectives reuse one draw per forward pass (one query per video, as in Eq. 10).
    key = f"{_CACHE_KEY}:{cfg.center_radius}:{cfg.negatives_per_positive}:{cfg.shuffle_levels}"
    cached = out.tensors.get(key)
    if cached is not None:
        return cached
    emb = out.embeddings
    rows = sample_query_per_video(batch.video_group, batch.num_videos)
    window = (batch.windows[rows].float() / batch.duration[rows].float()[:, None]).clamp(0, 1)
    n_clips = emb["clip_mask"][rows].sum(1, keepdim=True).float()
    strides = emb.get("level_strides") or [max(1, round(emb["clips"].shape[1] / f.shape[1])) for f in emb["levels"]]
    if cfg.shuffle_levels and len(strides) > 1:
        strides = shuffled_strides(list(strides))
    feats = [emb["clips"]] + list(emb["levels"])
    masks = [emb["clip_mask"]] + list(emb["level_masks"])
    samples = []
    for f, m, s in zip(feats, masks, [1] + list(strides)):
        m = m[rows]
        j = torch.arange(m.shape[1], device=m.device, dtype=torch.float32)[None]
        pos_frac = (j * s + 0.5) / n_clips
        positive, outside = _centre_sampling(pos_frac, m, window, cfg.center_radius * s / n_clips)
        count = (positive.sum(1).float() * cfg.negatives_per_positive).ceil().long()
        samples.append(LevelSample(f[rows], positive, _draw_negatives(outside, count)))
    result = (samples[0], samples[1:])
    out.tensors[key] = result
    return result


def info_nce(
    anchors: torch.Tensor, anchor_ok: torch.Tensor, pos: torch.Tensor, pos_ok: torch.Tensor,
    neg: torch.Tensor, neg_ok: torch.Tensor, cfg: ContrastConfig, exclude_self: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum and count of -log(e^{a.p} / (e^{a.p} + sum_n e^{a.n})) over anchor-positive pairs.

    anchors [V,A,H], pos [V,P,H], neg [V,N,H] with validity masks; with
    ``exclude_self`` anchors and positives are the same set and i = j is skipped.
    """
    if cfg.similarity == "cosine":
        anchors, pos, neg = (F.normalize(x, dim=-1) for x in (anchors, pos, neg))
    ap = torch.einsum("vah,vph->vap", anchors, pos) / cfg.temperature
    an = torch.einsum("vah,vnh->van", anchors, neg) / cfg.temperature
    an = an.masked_fill(~neg_ok[:, None, :], float("-inf"))
    neg_lse = torch.logsumexp(an, dim=-1, keepdim=True)  # -inf when no negative
    loss = torch.logaddexp(ap, neg_lse) - ap
    use = anchor_ok[:, :, None] & pos_ok[:, None, :]
    if exclude_self:
        use = use & ~torch.eye(ap.shape[1], ap.shape[2], dtype=torch.bool, device=ap.device)[None]
    loss = loss.masked_fill(~use, 0.0)
    return loss.sum(), use.sum()


def _reduce(total: torch.Tensor, count: torch.Tensor, cfg: ContrastConfig) -> torch.Tensor:
    if cfg.reduction == "sum":
        return total
    return total / count.clamp(min=1).to(total.dtype)


@register_objective("within_scale")
class WithinScaleContrast(Objective):
    """Eq. 11: inside each pyramid level, pull the moment's points together, push others away."""

    Config = ContrastConfig
    needs = ("clips", "clip_mask", "levels", "level_masks")

    def __init__(self, cfg: ContrastConfig, model: GroundingModel) -> None:
        super().__init__(cfg, model)

    def forward(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """L_within over levels 1..L of the sampled pair of every video."""
        _, levels = build_samples(out, batch, self.cfg)
        total = levels[0].feats.new_zeros(())
        count = torch.zeros((), dtype=torch.long, device=total.device)
        for lv in levels:
            # Every point of the level takes part, its role given by the masks: packing the selected points
            # would need their count on the host (a device sync) for a tensor shape.
            s, c = info_nce(lv.feats, lv.pos, lv.feats, lv.pos, lv.feats, lv.neg, self.cfg, exclude_self=True)
            total, count = total + s, count + c
        return {"total": _reduce(total, count, self.cfg), "pairs": count.float()}


@register_objective("cross_scale")
class CrossScaleContrast(Objective):
    """Eq. 12: level-0 points of the moment are anchors for its points at every higher level."""

    Config = ContrastConfig
    needs = ("clips", "clip_mask", "levels", "level_masks")

    def __init__(self, cfg: ContrastConfig, model: GroundingModel) -> None:
        super().__init__(cfg, model)

    def forward(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """L_cross: anchors from Z^0, positives / negatives from Z^1..Z^L."""
        base, levels = build_samples(out, batch, self.cfg)
        total = base.feats.new_zeros(())
        count = torch.zeros((), dtype=torch.long, device=total.device)
        for lv in levels:
            s, c = info_nce(base.feats, base.pos, lv.feats, lv.pos, lv.feats, lv.neg, self.cfg, exclude_self=False)
            total, count = total + s, count + c
        return {"total": _reduce(total, count, self.cfg), "pairs": count.float()}
