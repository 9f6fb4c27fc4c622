"""Pieces shared by the weakly supervised models (VLANet, FSAN).

Weak models see no time label: the only signal is which sentence belongs to
which video, so negatives are sentences of *other* videos in the batch
(``Batch.video_group``), and decoding ranks segments the model scored itself.
"""

from __future__ import annotations

import torch

from momentloc.decode import nms, to_moments, topk_segments
from momentloc.types import Moment


def valid_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Number of True entries per row of a [B,N] prefix mask (at least 1)."""
    return mask.long().sum(1).clamp(min=1)


def last_valid(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The element at the last valid position of each row: x [B,N,D], mask [B,N] -> [B,D]."""
    idx = (valid_lengths(mask) - 1).view(-1, 1, 1).expand(-1, 1, x.shape[-1])
    return x.gather(1, idx).squeeze(1)


def sample_negatives(group: torch.Tensor, num: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """For each pair, ``num`` random pairs of *another* video of the batch.

    Returns (index [B,num] long, valid [B] bool); a pair whose batch holds no
    other video gets valid False (its index is then meaningless). Uses the
    global torch RNG, so a seeded run draws the same negatives.
    """
    other = group[:, None] != group[None, :]
    valid = other.any(1)
    # Rows without any other video draw uniformly and are flagged invalid.
    weights = torch.where(valid[:, None], other.float(), torch.ones_like(other, dtype=torch.float))
    idx = torch.multinomial(weights, num, replacement=True)
    return idx, valid


def margin_hinge(pos: torch.Tensor, neg: torch.Tensor, valid: torch.Tensor, margin: float) -> torch.Tensor:
    """mean over valid pairs of mean_n max(0, margin - pos + neg_n): pos [B], neg [B] or [B,n], valid [B].

    A batch without any valid pair gives 0 that still depends on ``pos`` (so
    backward runs).
    """
    if neg.dim() == 1:
        neg = neg[:, None]
    hinge = torch.relu(margin - pos[:, None] + neg).mean(1)
    hinge = torch.where(valid, hinge, torch.zeros_like(hinge))
    return hinge.sum() / valid.sum().clamp(min=1).to(hinge.dtype) + 0.0 * pos.sum()


def repeated_token_mask(word_ids: torch.Tensor, word_mask: torch.Tensor, neg_ids: torch.Tensor,
                        neg_mask: torch.Tensor) -> torch.Tensor:
    """Valid tokens of the negative sentence that do not occur in the positive one.

    word_ids/word_mask [B,L] (positive), neg_ids/neg_mask [B,L'] (negative) ->
    [B,L'] bool. Padding (0) and unknown (1) ids never count as repeats:
    two unknown words need not be the same word.
    """
    known = word_mask & (word_ids > 1)
    same = (neg_ids[:, :, None] == word_ids[:, None, :]) & known[:, None, :]
    return neg_mask & ~same.any(-1)


def clip_bounds_to_seconds(start: torch.Tensor, end: torch.Tensor, n_valid: torch.Tensor,
                           duration: torch.Tensor) -> torch.Tensor:
    """Clip-index segments [start, end) -> seconds [...,2]; n_valid, duration are [B]."""
    shape = (-1,) + (1,) * (start.dim() - 1)
    scale = (duration.to(torch.float32) / n_valid.to(torch.float32)).view(shape)
    return torch.stack([start.float() * scale, end.float() * scale], -1)


def rank_segments(segments: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor,
                  duration: torch.Tensor, k: int, nms_iou: float) -> list[list[Moment]]:
    """Top-``k`` moments per pair after NMS: segments [B,N,2] s, scores/valid [B,N]."""
    valid = valid & torch.isfinite(scores)
    if nms_iou < 1.0:
        segs, sc, ok = nms(segments.detach().float(), scores.detach().float(), nms_iou, k, valid)
    else:
        segs, sc, ok = topk_segments(segments.detach().float(), scores.detach().float(), k, valid)
    return to_moments(segs, sc, ok, duration)
