"""ViGA-style point-supervised baseline (the "baseline" of SG-SCI's ablation, Sec. 4.4.1).

SG-SCI's pipeline without its two modules (no Granularity Correspondence
Alignment, no Scale Correspondence Learning), trained with one loss: the KL
divergence between a Gaussian centred on the glance (Eq. 5, normalised over
the video's clips) and the query-to-clip distribution that ``global_on``
names: the word-averaged query-to-clip attention (default, as ViGA's and
SG-SCI's released code train it) or softmax_i(cos(v_i, q) / temperature).
Inference is SG-SCI's: expand the anchor (argmax of that distribution) into
spans scored by their pooled unit features' dot product with the sentence.
"""

from __future__ import annotations

import torch

from momentloc.models.base import InputSpec, Output
from momentloc.models.point_layers import (
    PointConfig,
    PointGroundingModel,
    kl_divergence,
    normalize_target,
)
from momentloc.registry import register_model
from momentloc.types import Batch


class VigaConfig(PointConfig):
    """The baseline has exactly the shared point-model hyper-parameters."""


@register_model("viga")
class VigaModel(PointGroundingModel):
    """Point-supervised baseline: Gaussian-at-the-glance KL on the query-to-clip distribution."""

    supervision = "point"
    Config = VigaConfig

    def __init__(self, cfg: VigaConfig, spec: InputSpec) -> None:
        super().__init__(cfg, spec, gca=None)

    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """KL(normalised Gaussian at the glance || the query-to-clip distribution of ``global_on``)."""
        _, gauss = self.point_target(batch)
        mask = batch.video_mask
        kl = kl_divergence(normalize_target(gauss), self.global_log_probs(out, batch), mask)
        return {"total": kl, "kl": kl.detach()}
