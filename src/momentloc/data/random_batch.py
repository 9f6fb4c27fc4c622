"""Random batches of a given shape, for smoke tests and benchmarks of any model."""

from __future__ import annotations

from typing import Optional

import torch

from momentloc.types import Batch


def random_batch(
    batch_size: int,
    num_clips: int,
    video_dim: int,
    num_words: int = 12,
    text_dim: int = 300,
    vocab_size: int = 100,
    supervision: str = "full",
    variable_length: bool = False,
    queries_per_video: int = 1,
    seed: int = 0,
    duration: float = 30.0,
) -> Batch:
    """A batch of random features with valid labels for ``supervision`` (full/weak/point)."""
    g = torch.Generator().manual_seed(seed)
    B, T, L = batch_size, num_clips, num_words
    video = torch.randn(B, T, video_dim, generator=g)
    video_mask = torch.ones(B, T, dtype=torch.bool)
    if variable_length and T > 2:
        lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
        video_mask = torch.arange(T)[None, :] < lengths[:, None]
        video = video * video_mask[..., None]
    word_len = torch.randint(max(1, L // 2), L + 1, (B,), generator=g)
    word_mask = torch.arange(L)[None, :] < word_len[:, None]
    word_ids = torch.randint(2, vocab_size, (B, L), generator=g) * word_mask
    words = torch.randn(B, L, text_dim, generator=g) * word_mask[..., None]
    dur = torch.full((B,), float(duration))
    start = torch.rand(B, generator=g) * 0.6
    length = 0.1 + torch.rand(B, generator=g) * 0.3
    end = torch.minimum(start + length, torch.ones(B))
    windows: Optional[torch.Tensor] = torch.stack([start, end], 1) * dur[:, None]
    point: Optional[torch.Tensor] = None
    if supervision == "point":
        u = torch.rand(B, generator=g)
        point = windows[:, 0] + u * (windows[:, 1] - windows[:, 0])
        windows = None
    elif supervision == "weak":
        windows = None
    group = torch.arange(B) // max(1, queries_per_video)
    first = group * max(1, queries_per_video)
    # Queries of one video share its features, as in a video-centric batch.
    video, video_mask = video[first], video_mask[first]
    return Batch(
        video=video,
        video_mask=video_mask,
        words=words,
        word_mask=word_mask,
        word_ids=word_ids.long(),
        duration=dur,
        video_group=group,
        num_videos=int(group[-1]) + 1 if B else 0,
        word_lengths=tuple(word_mask.sum(1).tolist()),
        video_lengths=tuple(video_mask.sum(1).tolist()),
        index=torch.arange(B),
        windows=windows,
        point=point,
    )
