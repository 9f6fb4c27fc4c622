"""A small learnable span model: query-conditioned start and end distributions over clips."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from momentloc.models.base import GroundingModel, InputSpec, ModelConfig, Output, host_lengths, once_per_video
from momentloc.registry import register_model
from momentloc.types import Batch, Moment


class SpanConfig(ModelConfig):
    """Widths of the span model."""

    hidden: int = 128
    dropout: float = 0.1
    max_span_fraction: float = 1.0


def clip_index(seconds: torch.Tensor, duration: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The clip holding each time (valid clips evenly cover [0, duration])."""
    frac = (seconds / duration.clamp(min=1e-6)).clamp(0, 1 - 1e-6)
    return (frac * lengths).floor().long()


@register_model("span")
class SpanModel(GroundingModel):
    """Fuse the mean word vector into every clip (Hadamard), a BiGRU over clips,
    and two heads giving start and end logits; trained with cross-entropy on
    the clips that hold the annotated start and end."""

    supervision = "full"
    Config = SpanConfig

    def __init__(self, cfg: SpanConfig, spec: InputSpec) -> None:
        super().__init__(cfg, spec)
        h = cfg.hidden
        self.video_proj = nn.Sequential(nn.Linear(spec.video_dim, h), nn.ReLU(), nn.Dropout(cfg.dropout))
        self.text_proj = nn.Sequential(nn.Linear(spec.text_dim, h), nn.ReLU())
        self.gru = nn.GRU(h, h // 2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(h, 2)

    def forward(self, batch: Batch) -> Output:
        """Start and end logits [B,T] (masked to valid clips)."""
        wm = batch.word_mask.float()
        sent = (self.text_proj(batch.words) * wm[..., None]).sum(1) / wm.sum(1, keepdim=True).clamp(min=1)
        clips = once_per_video(lambda video, _: self.video_proj(video), batch, self.training)
        fused = F.normalize(clips * sent[:, None, :], dim=-1)
        # Packed so that the backward direction never reads padding: outputs do
        # not depend on which other videos share the batch.
        lengths = host_lengths(batch.video_mask, batch.video_lengths)
        packed = nn.utils.rnn.pack_padded_sequence(fused, lengths, batch_first=True, enforce_sorted=False)
        ctx, _ = self.gru(packed)
        ctx, _ = nn.utils.rnn.pad_packed_sequence(ctx, batch_first=True, total_length=fused.shape[1])
        logits = self.head(ctx).masked_fill(~batch.video_mask[..., None], -1e4)
        return Output(
            tensors={"start": logits[..., 0], "end": logits[..., 1]},
            embeddings={"clips": clips, "clip_mask": batch.video_mask, "sentence": sent},
        )

    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """Cross-entropy of the start and end clips."""
        assert batch.windows is not None, "span model needs full supervision"
        lengths = batch.video_mask.sum(1)
        s = clip_index(batch.windows[:, 0], batch.duration, lengths)
        e = clip_index(batch.windows[:, 1], batch.duration, lengths)
        ls, le = F.cross_entropy(out["start"], s), F.cross_entropy(out["end"], e)
        return {"total": ls + le, "start": ls, "end": le}

    def decode(self, out: Output, batch: Batch, k: int = 5) -> list[list[Moment]]:
        """Top-k (start <= end) spans by joint probability, with NMS at IoU 0.5."""
        from momentloc.decode import nms, to_moments

        ps, pe = out["start"].softmax(-1), out["end"].softmax(-1)
        T = ps.shape[1]
        joint = ps[:, :, None] * pe[:, None, :]
        idx = torch.arange(T, device=ps.device)
        valid = idx[:, None] <= idx[None, :]
        joint = joint.masked_fill(~valid, 0).flatten(1)
        lengths = batch.video_mask.sum(1).float()
        s_idx = idx.repeat_interleave(T).float()
        e_idx = idx.repeat(T).float() + 1
        scale = (batch.duration / lengths)[:, None]
        segs = torch.stack([s_idx[None] * scale, e_idx[None] * scale], -1)
        segs = torch.minimum(segs, batch.duration[:, None, None])
        top = min(joint.shape[1], 200)
        sc, order = joint.topk(top, dim=1)
        segs = torch.gather(segs, 1, order[..., None].expand(-1, -1, 2))
        kept_segs, kept_scores, keep = nms(segs, sc, 0.5, k)
        return to_moments(kept_segs, kept_scores, keep)
