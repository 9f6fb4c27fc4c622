"""ViGA-style point-supervised baseline (the "baseline" of SG-SCI's ablation, Sec. 4.4.1).

SG-SCI's pipeline without its two modules (no Granularity Correspondence
Alignment, no Scale Correspondence Learning), trained with one loss: the KL
divergence between a Gaussian centred on the glance (Eq. 5, normalised over
the video's clips) and the query-to-clip similarity distribution
softmax_i(cos(v_i, q) / temperature). Inference expands the clip that best
matches the query into a moment (ViGA's anchor-guided proposals).
"""

from __future__ import annotations

import torch

from momentloc.models.base import InputSpec, Output
from momentloc.models.point_layers import (
    PointConfig,
    PointGroundingModel,
    kl_divergence,
    masked_log_softmax,
    normalize_target,
)
from momentloc.registry import register_model
from momentloc.types import Batch


class VigaConfig(PointConfig):
    """The baseline has exactly the shared point-model hyper-parameters."""


@register_model("viga")
class VigaModel(PointGroundingModel):
    """Point-supervised baseline: Gaussian-at-the-glance KL on query-to-clip similarities."""

    supervision = "point"
    Config = VigaConfig

    def __init__(self, cfg: VigaConfig, spec: InputSpec) -> None:
        super().__init__(cfg, spec, gca=None)

    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """KL(normalised Gaussian at the glance || softmax of clip-sentence cosines)."""
        _, gauss = self.point_target(batch)
        mask = batch.video_mask
        log_p = masked_log_softmax(out["clip_sim"], mask, self.cfg.temperature)
        kl = kl_divergence(normalize_target(gauss), log_p, mask)
        return {"total": kl, "kl": kl.detach()}
