"""SG-SCI: Semantic Granularity and Scale Correspondence Integration (point supervision).

Granularity Correspondence Alignment (Sec. 3.3) lives in the shared encoder
(``point_layers.granularity_alignment``); this file adds Scale
Correspondence Learning (Sec. 3.4): the global Gaussian loss (Eq. 11), the
frame-to-moment KL over sliding windows with Gaussian soft labels (Eqs.
12-14) and the moment-to-frame KL over each window's best clip (Eqs. 15-16),
combined as L = L_g + beta L_fm + gamma L_mf (Eq. 17).

Two readings of which tensors these losses act on (``global_on``):

* ``attention`` (default, the authors' release): the global loss trains the
  word-averaged query-to-clip attention, whose argmax is the inference
  anchor; the frame-to-moment and moment-to-frame losses train the unit
  clip features against the unit sentence (a window's max-pooled unit
  vectors, and its key clip: the window mean in the release, ``mf_key``),
  and a span is scored at inference by the same dot product.
* ``similarity`` (Eq. 11 read literally): all three losses act on the
  clip-sentence cosine S and the anchor is argmax S; then the global loss
  alone already trains what inference reads. This is also SG-SCI's control.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import model_validator

from momentloc.models.base import InputSpec, Output
from momentloc.models.point_layers import (
    NEG,
    PointConfig,
    PointGroundingModel,
    kl_divergence,
    log_gaussian,
    masked_log_softmax,
    normalize_target,
    soft_cross_entropy,
)
from momentloc.registry import register_model
from momentloc.types import Batch


class SgSciConfig(PointConfig):
    """SG-SCI hyper-parameters (Sec. 4.2.2) and the switches of its ablations (Table 3, Fig. 3)."""

    alpha: float = 0.3  # GCA mean weighted factor, Eq. (10)
    beta: float = 0.1  # frame-to-moment weight, Eq. (17)
    gamma: float = 0.1  # moment-to-frame weight, Eq. (17)
    window_size: int = 8  # sliding-window moments for SCL, in clips (Table 4)
    window_stride: int = 4
    use_global: bool = True  # Table 3 "Global"
    use_fm: bool = True  # Table 3 "F-M"
    use_mf: bool = True  # Table 3 "M-F"
    soft_labels: bool = True  # False: y_i instead of y_i W(M_i) (Fig. 3a "soft labels set to 1")
    gca: bool = True  # Fig. 3a: without GCA
    gca_video: bool = True  # Fig. 3b: which modality GCA refines
    gca_text: bool = True
    gca_prior: Literal["both", "attention", "global"] = "both"  # Eq. (9): V_c from both priors or one
    # Key clip K_i of a window for the moment-to-frame loss under global_on=attention: the window's
    # mean unit feature ("mean", what the release computes), its most-attended clip ("attention"),
    # or its clip most similar to the query ("similarity", Eq. 15).
    mf_key: Literal["mean", "attention", "similarity"] = "mean"

    @model_validator(mode="after")
    def _check(self) -> SgSciConfig:
        if not (self.use_global or self.use_fm or self.use_mf):
            raise ValueError("at least one of use_global, use_fm, use_mf must be true")
        if self.window_size < 1 or self.window_stride < 1:
            raise ValueError("window_size and window_stride must be >= 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must lie in [0, 1]")
        return self


def window_grid(lengths: torch.Tensor, T: int, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sliding windows over each video: starts [N], inclusive ends [B,N], valid [B,N].

    Starts step by ``stride``; a window is cut at the video's end, and a cut
    window is kept only if the one before it did not already reach the end.
    """
    starts = torch.arange(0, T, stride, device=lengths.device)
    n = lengths[:, None]
    ends = torch.minimum(starts[None, :] + size, n) - 1
    valid = (starts[None, :] < n) & ((starts[None, :] == 0) | (starts[None, :] - stride + size < n))
    return starts, ends, valid


def window_soft_labels(tau: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, valid: torch.Tensor,
                       log_g: torch.Tensor, soft: bool = True) -> torch.Tensor:
    """Eqs. (12)-(13), normalised over windows: y_i W(M_i) with W = G(start) G(end), y_i = [tau in M_i].

    Works in log space so that narrow Gaussians on short videos do not underflow.
    """
    positive = valid & (starts[None, :] <= tau[:, None]) & (tau[:, None] <= ends)
    if not soft:
        return normalize_target(positive.to(log_g.dtype))
    rows = torch.arange(tau.shape[0], device=tau.device)[:, None]
    log_w = log_g[rows, starts[None, :].expand_as(ends)] + log_g[rows, ends]
    return torch.softmax(log_w.masked_fill(~positive, float("-inf")), dim=-1).nan_to_num(0.0)


def unfold_windows(x: torch.Tensor, size: int, stride: int, fill: float) -> torch.Tensor:
    """x [B,T,...] -> [B,N,...,size]: the windows of ``window_grid`` (positions past T hold ``fill``)."""
    T = x.shape[1]
    n = len(range(0, T, stride))
    pad = (n - 1) * stride + size - T
    if pad > 0:
        x = torch.cat([x, x.new_full((x.shape[0], pad, *x.shape[2:]), fill)], 1)
    return x.unfold(1, size, stride)[:, :n]


def window_features(clips: torch.Tensor, mask: torch.Tensor, size: int, stride: int, pooling: str) -> torch.Tensor:
    """Pooled clip features [B,N,D] of every sliding window (valid clips only)."""
    if pooling == "mean":
        summed = unfold_windows(clips * mask[..., None], size, stride, 0.0).sum(-1)
        count = unfold_windows(mask.to(clips.dtype), size, stride, 0.0).sum(-1)
        return summed / count.clamp(min=1)[..., None]
    low = torch.finfo(clips.dtype).min
    return unfold_windows(clips.masked_fill(~mask[..., None], low), size, stride, low).max(-1).values


def scale_losses(sim: torch.Tensor, clips: torch.Tensor, sentence: torch.Tensor, mask: torch.Tensor, tau: torch.Tensor,
                 log_g: torch.Tensor, cfg: SgSciConfig) -> dict[str, torch.Tensor]:
    """The three SCL terms (Eqs. 11, 14, 16) on clip similarities [B,T] and clip features [B,T,D]."""
    lengths = mask.sum(1)
    T = mask.shape[1]
    gauss = torch.exp(log_g) * mask
    out = {"global": soft_cross_entropy(normalize_target(gauss), masked_log_softmax(sim, mask, cfg.temperature), mask)}
    starts, ends, valid = window_grid(lengths, T, cfg.window_size, cfg.window_stride)
    target = window_soft_labels(tau, starts, ends, valid, log_g, cfg.soft_labels)
    if cfg.use_fm:
        feats = window_features(clips, mask, cfg.window_size, cfg.window_stride, cfg.pooling)
        feats = torch.where(valid[..., None], feats, torch.zeros_like(feats))
        moment_sim = F.cosine_similarity(feats, sentence[:, None, :], dim=-1)
        out["fm"] = kl_divergence(target, masked_log_softmax(moment_sim, valid, cfg.temperature), valid)
    if cfg.use_mf:
        # K_i: the clip of M_i most similar to the query (Eq. 15); its cosine is the window max of S.
        key_sim = unfold_windows(sim.masked_fill(~mask, NEG), cfg.window_size, cfg.window_stride, NEG).max(-1).values
        key_sim = torch.where(valid, key_sim, torch.zeros_like(key_sim))
        out["mf"] = kl_divergence(target, masked_log_softmax(key_sim, valid, cfg.temperature), valid)
    return out


def unit_scale_losses(clips: torch.Tensor, sentence: torch.Tensor, mask: torch.Tensor, attention: torch.Tensor,
                      tau: torch.Tensor, log_g: torch.Tensor, cfg: SgSciConfig) -> dict[str, torch.Tensor]:
    """Eqs. (14) and (16) as the release computes them: dot products of unit clip features with the unit sentence.

    F-M scores a window by its max-pooled unit clip vectors; M-F by its key clip (``cfg.mf_key``).
    """
    lengths = mask.sum(1)
    T = mask.shape[1]
    unit = F.normalize(clips, dim=-1) * mask[..., None]
    query = F.normalize(sentence, dim=-1)
    starts, ends, valid = window_grid(lengths, T, cfg.window_size, cfg.window_stride)
    target = window_soft_labels(tau, starts, ends, valid, log_g, cfg.soft_labels)
    size, stride = cfg.window_size, cfg.window_stride
    out = {}
    if cfg.use_fm:
        feats = window_features(unit, mask, size, stride, "max")
        score = torch.where(valid, (feats * query[:, None, :]).sum(-1), torch.zeros_like(valid, dtype=unit.dtype))
        out["fm"] = kl_divergence(target, masked_log_softmax(score, valid, cfg.temperature), valid)
    if cfg.use_mf:
        if cfg.mf_key == "mean":
            feats = window_features(unit, mask, size, stride, "mean")
            score = (feats * query[:, None, :]).sum(-1)
        else:
            cos = (unit * query[:, None, :]).sum(-1)
            source = attention if cfg.mf_key == "attention" else cos
            pick = unfold_windows(source.masked_fill(~mask, NEG), size, stride, NEG).argmax(-1, keepdim=True)
            score = unfold_windows(cos, size, stride, 0.0).gather(-1, pick).squeeze(-1)
        score = torch.where(valid, score, torch.zeros_like(score))
        out["mf"] = kl_divergence(target, masked_log_softmax(score, valid, cfg.temperature), valid)
    return out


@register_model("sg_sci")
class SgSciModel(PointGroundingModel):
    """SG-SCI: the point pipeline with GCA in the encoder and SCL as the training objective."""

    supervision = "point"
    Config = SgSciConfig

    def __init__(self, cfg: SgSciConfig, spec: InputSpec) -> None:
        gca = {"alpha": cfg.alpha, "video": cfg.gca_video, "text": cfg.gca_text, "prior": cfg.gca_prior} if cfg.gca else None
        super().__init__(cfg, spec, gca=gca)

    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """L = L_g + beta L_fm + gamma L_mf, each switchable for the Table 3 ablation."""
        cfg: SgSciConfig = self.cfg  # type: ignore[assignment]
        tau, _ = self.point_target(batch)
        mask = batch.video_mask
        log_g = log_gaussian(tau, mask.sum(1), mask.shape[1], cfg.sigma)
        if cfg.global_on == "similarity":
            parts = scale_losses(out["clip_sim"], out["clips"], out["sentence"], mask, tau, log_g, cfg)
        else:
            gauss = normalize_target(torch.exp(log_g) * mask)
            parts = {"global": soft_cross_entropy(gauss, self.global_log_probs(out, batch), mask),
                     **unit_scale_losses(out["clips"], out["sentence"], mask, out["query_attention"], tau, log_g, cfg)}
        terms = []
        if cfg.use_global:
            terms.append(parts["global"])
        if cfg.use_fm:
            terms.append(cfg.beta * parts["fm"])
        if cfg.use_mf:
            terms.append(cfg.gamma * parts["mf"])
        total = torch.stack(terms).sum()
        logged = {k: v.detach() for k, v in parts.items()}
        return {"total": total, **logged}
