"""Random batches of a given shape, for smoke tests and benchmarks of any model (built by the one ``collate``)."""

from __future__ import annotations

import torch

from momentloc.data.batch import collate
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
    """A batch of random features with valid labels for ``supervision`` (full/weak/point).

    Rows ``b`` and ``b'`` share a video when ``b // queries_per_video == b' // queries_per_video``. With
    ``variable_length`` each video has from ``num_clips // 2`` to ``num_clips`` clips (the first has them all,
    so the batch is ``num_clips`` long); queries have from ``num_words // 2`` to ``num_words`` words (the first
    has them all).
    """
    g = torch.Generator().manual_seed(seed)
    B, T, L, q = batch_size, num_clips, num_words, max(1, queries_per_video)
    videos = -(-B // q)
    lengths = [T] * videos
    if variable_length and T > 2:
        lengths = [T] + torch.randint(T // 2, T + 1, (videos - 1,), generator=g).tolist()
    clips = [torch.randn(t, video_dim, generator=g) for t in lengths]
    vectors = torch.randn(vocab_size, text_dim, generator=g)
    vectors[0] = 0.0
    word_len = [L] + torch.randint(max(1, L // 2), L + 1, (B - 1,), generator=g).tolist()
    start = torch.rand(B, generator=g) * 0.6
    end = torch.minimum(start + 0.1 + torch.rand(B, generator=g) * 0.3, torch.ones(B))
    inside = torch.rand(B, generator=g)
    items = []
    for b in range(B):
        item = {"index": b, "video_id": f"v{b // q}", "video": clips[b // q], "duration": float(duration),
                "word_ids": torch.randint(2, vocab_size, (word_len[b],), generator=g)}
        window = torch.stack([start[b], end[b]]) * duration
        if supervision == "full":
            item["window"] = window
        elif supervision == "point":
            item["point"] = float(window[0] + inside[b] * (window[1] - window[0]))
        items.append(item)
    return collate(items, vectors.numpy())
