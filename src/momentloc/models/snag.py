"""SnAG-style grounder: local-attention feature pyramid, late cross-attention fusion, point heads.

The architecture of "multi-scale contrastive learning for temporal grounding"
(its Methodology: video encoder Eqs. 1-4, text encoder, fusion Eqs. 5-7,
moment decoding Eqs. 8-9, focal + DIoU losses of Eq. 13). The contrastive
terms of Eqs. 11-12 are plug-in objectives in momentloc.objectives.multiscale_contrast.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from momentloc.decode import soft_nms, to_moments
from momentloc.models import snag_layers as L
from momentloc.models.base import (
    GroundingModel,
    InputSpec,
    ModelConfig,
    Output,
    first_row_per_video,
)
from momentloc.registry import register_model
from momentloc.types import Batch, Moment


class SnagConfig(ModelConfig):
    """Hyper-parameters of the pyramid grounder (defaults: SnAG's TACoS setting)."""

    hidden_dim: int = 256
    text_hidden_dim: int = 128
    num_heads: int = 4
    window: int = 19  # local attention window W (odd)
    # "release": SnAG's released encoder layer, the default (its q, k, v each get a depthwise 3-tap
    # convolution + LayerNorm; a stride-2 layer down-samples inside the attention with a max-pool
    # residual). "linear": linear q, k, v and a separate strided depthwise convolution + LayerNorm
    # between layers as the residual stream (Eq. 4 read literally).
    encoder_block: Literal["release", "linear"] = "release"
    embed_convs: int = 2  # conv layers of the projection (Eq. 1)
    stem_layers: int = 0  # full-resolution transformer layers before the pyramid
    num_levels: int = 8  # pyramid levels L; level l has stride 2^l
    text_layers: int = 5
    background_token: bool = True  # a learnable "no match" word the fusion can attend to
    # Not in SnAG (off by default): LayerNorm the projected words so the text path does not
    # depend on the word-vector scale (GloVe norms are ~6, MiniLM vectors are unit-norm).
    text_input_norm: bool = False
    fusion_layers: int = 2
    fusion_mode: Literal["affine", "adaln"] = "affine"
    head_layers: int = 2
    dropout: float = 0.1
    path_drop: float = 0.1
    layer_scale_init: float = 1e-4
    positional_encoding: bool = True
    # Targets (centre sampling and per-level regression ranges).
    regression_range: float = 4.0  # level 0 predicts moments whose half-extent is < this many clips
    range_overlap: float = 0.5  # sigma: lower bound of level l is sigma * upper bound of level l-1
    center_radius: float = 1.5  # alpha of centre sampling, in units of the level's stride
    # Losses (Eq. 13).
    focal_alpha: float = 0.5
    focal_gamma: float = 2.0
    label_smoothing: float = 0.2
    reg_weight: float = 1.0  # rho_reg
    loss_norm_init: float = 100.0  # initial running number of positives that normalises the losses
    loss_norm_momentum: float = 0.9  # 0 = normalise by this batch's positives only
    # Decoding.
    pre_nms_topk: int = 2000
    pre_nms_thresh: float = 0.001
    min_length: float = 0.1  # in clips
    nms_sigma: float = 0.9
    nms_min_score: float = 0.001
    voting_iou: float = 0.95  # 0 disables score voting


class VideoPyramid(nn.Module):
    """Eqs. 1-4: conv projection, local transformers, strided depthwise down-sampling (inside the
    attention layers with ``encoder_block: release``, between them with ``linear``)."""

    def __init__(self, cfg: SnagConfig, in_dim: int) -> None:
        super().__init__()
        d = cfg.hidden_dim
        self.cfg = cfg
        self.proj = L.MaskedConv(in_dim, d, 1)
        self.convs = nn.ModuleList(L.MaskedConv(d, d, 3, bias=False) for _ in range(cfg.embed_convs))
        self.conv_norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(cfg.embed_convs))
        rest = (cfg.dropout, cfg.path_drop, cfg.layer_scale_init)
        if cfg.encoder_block == "release":
            self.stem = nn.ModuleList(
                L.ConvEncoderBlock(d, cfg.num_heads, cfg.window, 1, *rest) for _ in range(cfg.stem_layers)
            )
            self.levels = nn.ModuleList(
                L.ConvEncoderBlock(d, cfg.num_heads, cfg.window, 2 if i else 1, *rest) for i in range(cfg.num_levels)
            )
            self.down = nn.ModuleList()
        else:
            args = (d, cfg.num_heads, cfg.window, *rest)
            self.stem = nn.ModuleList(L.EncoderBlock(*args) for _ in range(cfg.stem_layers))
            self.levels = nn.ModuleList(L.EncoderBlock(*args) for _ in range(cfg.num_levels))
            self.down = nn.ModuleList(L.Downsample(d) for _ in range(cfg.num_levels - 1))

    def forward(self, video: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """video [V,T,D_in] -> (Z^0 [V,T,H], levels [V,T_l,H], level masks [V,T_l])."""
        x = self.proj(video, mask)[0]
        for conv, norm in zip(self.convs, self.conv_norms):
            x = F.relu(norm(conv(x, mask)[0])) * mask[..., None]
        if self.cfg.positional_encoding:
            x = x + L.sinusoid_positions(x.shape[1], x.shape[2], x.device)[None] * mask[..., None]
        release = self.cfg.encoder_block == "release"
        for layer in self.stem:
            x = layer(x, mask)[0] if release else layer(x, mask)
        base = x
        levels, masks = [], []
        for i, layer in enumerate(self.levels):
            if release:
                x, mask = layer(x, mask)
            else:
                if i > 0:
                    x, mask = self.down[i - 1](x, mask)
                x = layer(x, mask)
            levels.append(x)
            masks.append(mask)
        return base, levels, masks


class TextEncoder(nn.Module):
    """Word vectors -> projection + positions (+ background token) -> transformer layers."""

    def __init__(self, cfg: SnagConfig, in_dim: int) -> None:
        super().__init__()
        d = cfg.text_hidden_dim
        self.cfg = cfg
        self.proj = nn.Linear(in_dim, d)
        self.in_norm = nn.LayerNorm(d) if cfg.text_input_norm else nn.Identity()
        self.background = nn.Parameter(torch.randn(1, 1, d) * 0.02) if cfg.background_token else None
        self.layers = nn.ModuleList(
            L.EncoderBlock(d, cfg.num_heads, 0, cfg.dropout, cfg.path_drop, cfg.layer_scale_init)
            for _ in range(cfg.text_layers)
        )

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens for fusion [B,L',H_t], their mask, word features [B,L,H_t] without the background token)."""
        x = self.in_norm(self.proj(words)) * mask[..., None]
        if self.cfg.positional_encoding:
            x = x + L.sinusoid_positions(x.shape[1], x.shape[2], x.device)[None] * mask[..., None]
        extra = 0
        if self.background is not None:
            x = torch.cat([self.background.expand(x.shape[0], -1, -1), x], dim=1)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
            extra = 1
        for layer in self.layers:
            x = layer(x, mask)
        return x, mask, x[:, extra:]


@register_model("snag")
class Snag(GroundingModel):
    """Feature-pyramid grounder: every step of every level proposes a moment (Eqs. 8-9)."""

    supervision = "full"
    Config = SnagConfig

    def __init__(self, cfg: SnagConfig, spec: InputSpec) -> None:
        super().__init__(cfg, spec)
        if cfg.window > 0 and cfg.window % 2 == 0:
            raise ValueError(f"snag: window must be odd, got {cfg.window}")
        self.video_net = VideoPyramid(cfg, spec.video_dim)
        self.text_net = TextEncoder(cfg, spec.text_dim)
        self.fusion = nn.ModuleList(
            L.FusionLayer(
                cfg.hidden_dim, cfg.text_hidden_dim, cfg.num_heads, cfg.fusion_mode,
                cfg.dropout, cfg.path_drop, cfg.layer_scale_init,
            )
            for _ in range(cfg.fusion_layers)
        )
        self.fusion_norm = nn.LayerNorm(cfg.hidden_dim)
        self.cls_head = L.ConvHead(cfg.hidden_dim, 1, cfg.head_layers)
        self.reg_head = L.ConvHead(cfg.hidden_dim, 2, cfg.head_layers)
        self.reg_scales = nn.Parameter(torch.ones(cfg.num_levels))
        self.ranges = L.regression_ranges(cfg.num_levels, cfg.regression_range, cfg.range_overlap)
        self.register_buffer("loss_norm", torch.tensor(float(cfg.loss_norm_init)))

    # ----------------------------------------------------------------- forward
    def encode_video(
        self, video: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The query-independent pyramid of each video (run once per video)."""
        return self.video_net(video, mask)

    def fuse(self, x: torch.Tensor, mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Fuse a query into one level (the same fusion weights serve every level)."""
        for layer in self.fusion:
            x = layer(x, mask, text, text_mask)
        return self.fusion_norm(x) * mask[..., None]

    def forward(self, batch: Batch) -> Output:
        """Encode each video once, each query once, fuse every query into its video's pyramid."""
        first, inverse = first_row_per_video(batch.video_group, num_videos=batch.num_videos)
        base, levels, masks = self.encode_video(batch.video[first], batch.video_mask[first])
        tokens, token_mask, words = self.text_net(batch.words, batch.word_mask)
        logits, offsets, pair_levels, pair_masks = [], [], [], []
        for i, (feats, mask) in enumerate(zip(levels, masks)):
            feats, mask = feats[inverse], mask[inverse]
            fused = self.fuse(feats, mask, tokens, token_mask)
            logits.append(self.cls_head(fused, mask)[..., 0])
            offsets.append(F.relu(self.reg_head(fused, mask) * self.reg_scales[i]))
            pair_levels.append(feats)
            pair_masks.append(mask)
        wmask = batch.word_mask.to(words.dtype)
        sentence = (words * wmask[..., None]).sum(1) / wmask.sum(1, keepdim=True).clamp(min=1)
        clip_mask = batch.video_mask[first][inverse]
        embeddings = {
            "clips": base[inverse], "clip_mask": clip_mask, "levels": pair_levels, "level_masks": pair_masks,
            "level_strides": [2**i for i in range(len(levels))],
            "sentence": sentence, "words": words, "word_mask": batch.word_mask,
        }
        tensors = {"logits": logits, "offsets": offsets, "masks": pair_masks, "num_clips": clip_mask.sum(1)}
        return Output(tensors=tensors, embeddings=embeddings)

    # ----------------------------------------------------------------- targets
    def _points(self, out: Output) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every candidate point of every level: (position in clips [P], stride [P], range [P,2])."""
        pos, strides, ranges = [], [], []
        for i, mask in enumerate(out["masks"]):
            n, s = mask.shape[1], 2**i
            pos.append(torch.arange(n, device=mask.device, dtype=torch.float32) * s)
            strides.append(torch.full((n,), float(s), device=mask.device))
            ranges.append(torch.tensor(self.ranges[i], device=mask.device).expand(n, 2))
        return torch.cat(pos), torch.cat(strides), torch.cat(ranges)

    def targets(self, out: Output, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive points [B,P] and their normalised distances to start / end [B,P,2]."""
        if batch.windows is None:
            raise ValueError("snag is fully supervised: the batch carries no windows")
        pos, stride, ranges = self._points(out)
        n = out["num_clips"].to(torch.float32)[:, None]
        # Clip i covers [i, i+1) of n clips and its feature sits at its centre i + 0.5.
        win = batch.windows.to(torch.float32) / batch.duration.to(torch.float32)[:, None] * n - 0.5
        start, end = win[:, :1], win[:, 1:]
        to_start, to_end = pos[None] - start, end - pos[None]
        center = 0.5 * (start + end)
        radius = stride[None] * self.cfg.center_radius
        lo, hi = torch.maximum(center - radius, start), torch.minimum(center + radius, end)
        inside = (pos[None] > lo) & (pos[None] < hi)
        extent = torch.maximum(to_start, to_end)
        in_range = (extent >= ranges[None, :, 0]) & (extent < ranges[None, :, 1])
        offsets = torch.stack([to_start, to_end], -1) / stride[None, :, None]
        return inside & in_range, offsets

    # -------------------------------------------------------------------- loss
    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """Focal classification + rho_reg * DIoU regression (Eq. 13 without the contrastive terms)."""
        cfg = self.cfg
        labels, gt_offsets = self.targets(out, batch)
        logits = torch.cat(out["logits"], 1)
        offsets = torch.cat(out["offsets"], 1)
        valid = torch.cat(out["masks"], 1)
        positive = labels & valid
        num_pos = positive.sum().to(torch.float32)
        if self.training and cfg.loss_norm_momentum > 0:
            with torch.no_grad():
                m = cfg.loss_norm_momentum
                self.loss_norm.mul_(m).add_((1 - m) * num_pos.clamp(min=1))
            norm = self.loss_norm
        else:
            norm = self.loss_norm if cfg.loss_norm_momentum > 0 else num_pos.clamp(min=1)
        # Masked sums rather than boolean indexing, which asks the device how many elements it selects (a sync).
        soft = labels.to(logits.dtype) * (1 - cfg.label_smoothing) + cfg.label_smoothing / 2
        focal = L.sigmoid_focal_loss(logits, soft, cfg.focal_alpha, cfg.focal_gamma)
        cls = torch.where(valid, focal, torch.zeros_like(focal)).sum() / norm
        # Points that are not positive get a dummy unit segment: finite loss, and no gradient reaches them.
        one, chosen = torch.ones_like(offsets), positive[..., None]
        diou = L.diou_loss(torch.where(chosen, offsets, one), torch.where(chosen, gt_offsets.to(offsets.dtype), one))
        reg = torch.where(positive, diou, torch.zeros_like(diou)).sum() / norm
        return {"total": cls + cfg.reg_weight * reg, "cls": cls.detach(), "reg": reg.detach(), "positives": num_pos}

    # ------------------------------------------------------------------ decode
    @torch.no_grad()
    def decode(self, out: Output, batch: Batch, k: int = 5) -> list[list[Moment]]:
        """Top-k moments per pair: Soft-NMS over every level's candidates (Eqs. 8-9), in seconds."""
        cfg = self.cfg
        pos, stride, _ = self._points(out)
        scores = torch.sigmoid(torch.cat(out["logits"], 1).float())
        scores = scores.masked_fill(~torch.cat(out["masks"], 1), -1.0)
        offsets = torch.cat(out["offsets"], 1).float()
        segs = torch.stack([pos[None] - offsets[..., 0] * stride[None], pos[None] + offsets[..., 1] * stride[None]], -1)
        topk = min(cfg.pre_nms_topk, scores.shape[1])
        top_scores, idx = scores.topk(topk, dim=1)
        top_segs = segs.gather(1, idx[..., None].expand(-1, -1, 2))
        keep = (top_scores > cfg.pre_nms_thresh) & (top_segs[..., 1] - top_segs[..., 0] > cfg.min_length)
        # Never leave a pair with nothing: its best valid candidate always stays.
        keep[:, 0] |= top_scores[:, 0] >= 0
        top_scores = top_scores.clamp(min=0)
        kk = min(k, topk)
        picked, picked_scores, ok = soft_nms(
            top_segs, top_scores, kk, method="gaussian", sigma=cfg.nms_sigma, score_threshold=cfg.nms_min_score, valid=keep
        )
        ok[:, 0] |= keep[:, 0]
        if cfg.voting_iou > 0:
            picked = L.score_voting(picked, top_segs, top_scores, keep, cfg.voting_iou)
        n = out["num_clips"].float()[:, None, None]
        dur = batch.duration.float()[:, None, None]
        seconds = ((picked + 0.5) / n * dur).clamp(min=0).minimum(dur)
        return to_moments(seconds[:, :kk], picked_scores[:, :kk], ok[:, :kk])
