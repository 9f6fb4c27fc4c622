"""2D-TAN (Zhang et al., AAAI 2020): a 2D map of candidate moments scored by a
temporal adjacent network of masked 2D convolutions."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from momentloc.decode import nms, to_moments
from momentloc.models.base import GroundingModel, InputSpec, ModelConfig, Output, once_per_video
from momentloc.models.tan2d_layers import (
    MaskedMapConv,
    MomentMap,
    SentenceEncoder,
    masked_bce,
    moment_bounds,
    resample_clips,
    scaled_iou_targets,
)
from momentloc.registry import register_model
from momentloc.types import Batch, Moment


class Tan2dConfig(ModelConfig):
    """2D-TAN hyper-parameters (defaults: Charades-STA)."""

    renamed = {"num_clips": "map_size"}  # the map's size was called num_clips, as data.num_clips (the clips read)

    map_size: int = Field(16, ge=1, description="N: clips after average pooling; the map is N x N")
    hidden_size: int = Field(512, ge=1)
    map_variant: Literal["pool", "conv"] = "pool"
    kernel_size: int = Field(5, ge=1, description="temporal adjacent network kernel")
    num_layers: int = Field(8, ge=0, description="temporal adjacent network depth")
    lstm_layers: int = Field(3, ge=1)
    bidirectional: bool = False
    t_min: float = Field(0.5, ge=0.0, le=1.0, description="scaled IoU: labels are 0 at or below this IoU")
    t_max: float = Field(1.0, ge=0.0, le=1.0, description="scaled IoU: labels are 1 at or above this IoU")
    nms_threshold: float = Field(0.5, gt=0.0, le=1.0)
    # Cells ranked before NMS; all candidates when None.
    pre_nms: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check_thresholds(self) -> "Tan2dConfig":
        if self.t_max <= self.t_min:
            raise ValueError(f"t_max ({self.t_max}) must exceed t_min ({self.t_min})")
        return self


@register_model("tan2d")
class Tan2d(GroundingModel):
    """2D temporal adjacent network; full supervision (start/end times)."""

    supervision = "full"
    Config = Tan2dConfig

    def __init__(self, cfg: Tan2dConfig, spec: InputSpec) -> None:
        super().__init__(cfg, spec)
        H, N = cfg.hidden_size, cfg.map_size
        self.clip_fc = nn.Linear(spec.video_dim, H)
        self.moment_map = MomentMap(N, H, cfg.map_variant)
        self.sentence = SentenceEncoder(spec.text_dim, H, cfg.lstm_layers, cfg.bidirectional)
        self.text_proj = nn.Linear(H, H)
        self.map_proj = nn.Conv2d(H, H, 1)  # applied to the candidate cells as a linear map (same weights)
        self.tan = MaskedMapConv(H, cfg.kernel_size, cfg.num_layers)
        self.score = nn.Conv2d(H, 1, 1)

    @property
    def candidate_mask(self) -> torch.Tensor:
        """[N,N] bool: the cells that are candidate moments."""
        return self.moment_map.mask

    def embedding_dims(self) -> dict[str, int]:
        """Widths of the tensors in ``Output.embeddings`` (for plug-in objectives)."""
        h = self.cfg.hidden_size
        return {"clips": h, "sentence": h, "words": h, "fusion_clips": h, "fusion_sentence": h}

    def encode_video(self, video: torch.Tensor, video_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips resampled to N and projected [B,N,H], and the projected feature of every candidate cell [B,M,H].

        The 1x1 map projection and the fusion run on the M candidate cells only
        (the rest of the map is masked to zero before the convolutions anyway):
        for TACoS's sparse 128 x 128 map that is a fraction of the N^2 cells, and
        no map-sized tensor is kept for backward before the first convolution.
        """
        clips = F.relu(self.clip_fc(resample_clips(video, video_mask, self.cfg.map_size)))
        cells = self.moment_map.cell_values(clips.transpose(1, 2)).transpose(1, 2)
        return clips, F.linear(cells, self.map_proj.weight.flatten(1), self.map_proj.bias)

    def forward(self, batch: Batch) -> Output:
        """Score every candidate moment of the N x N map for each pair."""
        clips, cells = once_per_video(self.encode_video, batch, self.training)
        words, sentence = self.sentence(batch.words, batch.word_mask, batch.word_lengths)
        mask = self.candidate_mask
        text = self.text_proj(sentence)
        fused = F.normalize(cells * text[:, None, :], dim=-1)  # [B,M,H]
        logits = self.score(self.tan(self.moment_map.scatter(fused.transpose(1, 2)), mask)).squeeze(1)  # [B,N,N]
        scores = torch.sigmoid(logits) * mask
        clip_mask = torch.ones(clips.shape[:2], dtype=torch.bool, device=clips.device)
        return Output(
            tensors={"logits": logits, "score_map": scores, "candidate_mask": mask},
            embeddings={
                "clips": clips,
                "clip_mask": clip_mask,
                "sentence": sentence,
                # the two sides of the Hadamard fusion: each clip as its own cell (the map's diagonal, the first N
                # cells) and the projected sentence
                "fusion_clips": cells[:, : self.cfg.map_size],
                "fusion_sentence": text,
                "words": words,
                "word_mask": batch.word_mask,
            },
        )

    def targets(self, batch: Batch) -> torch.Tensor:
        """Scaled-IoU label of every cell, [B,N,N]."""
        if batch.windows is None:
            raise ValueError("tan2d is fully supervised: the batch has no windows")
        frac = (batch.windows / batch.duration[:, None].clamp(min=1e-6)).clamp(0.0, 1.0)
        return scaled_iou_targets(frac, self.cfg.map_size, self.cfg.t_min, self.cfg.t_max)

    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """BCE of the per-cell scores against scaled-IoU labels over candidate cells."""
        bce = masked_bce(out["logits"], self.targets(batch), self.candidate_mask)
        return {"total": bce, "bce": bce}

    @torch.no_grad()
    def decode(self, out: Output, batch: Batch, k: int = 5) -> list[list[Moment]]:
        """Rank candidate cells, suppress overlaps (NMS), return the top ``k`` in seconds."""
        N = self.cfg.map_size
        mask = self.candidate_mask
        start, end = moment_bounds(N, mask.device)
        segments = torch.stack([start[mask], end[mask]], -1)  # [M,2] fractions
        scores = out["score_map"][:, mask].float()  # [B,M]
        if self.cfg.pre_nms is not None and self.cfg.pre_nms < scores.shape[1]:
            scores, top = scores.topk(self.cfg.pre_nms, dim=1)
            segs = segments[top]  # [B,P,2]
        else:
            segs = segments[None].expand(scores.shape[0], -1, -1)
        kept, kept_scores, ok = nms(segs, scores, iou_threshold=self.cfg.nms_threshold, k=k)
        return to_moments(kept * batch.duration[:, None, None].to(kept.dtype), kept_scores, ok, batch.duration)
