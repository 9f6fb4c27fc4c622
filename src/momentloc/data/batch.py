"""The one batch builder: items (a video's clip features, a query's word ids, duration, labels) -> a padded ``Batch``.

The dataset's loaders (training and evaluation), ``Predictor`` and ``random_batch`` all build their batches here,
so a model sees the same tensors in training, evaluation, serving and the benchmarks.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from momentloc.types import Batch

Device = Union[str, torch.device]


def collate(items: Sequence[dict[str, Any]], vectors: np.ndarray, device: Optional[Device] = None,
            share_video: bool = False) -> Batch:
    """Pad items into a Batch; pairs of the same video get the same ``video_group``.

    An item holds ``index``, ``video_id``, ``video`` [T, D], ``word_ids`` [L], ``duration`` (s) and, where the
    supervision allows, ``window`` [2] or ``point``; ``vectors`` [V, E] are the word vectors. With ``device``
    the batch is made there; with ``share_video`` (every item holds the same video, as a query batch of the
    Predictor does) the video goes to the device once and every row is a view of it instead of a padded copy.
    """
    B = len(items)
    L = max(len(it["word_ids"]) for it in items)
    word_ids = torch.zeros(B, L, dtype=torch.long)
    groups: dict[str, int] = {}
    group = torch.empty(B, dtype=torch.long)
    for b, it in enumerate(items):
        word_ids[b, : len(it["word_ids"])] = it["word_ids"]
        group[b] = groups.setdefault(it["video_id"], len(groups))
    video, video_mask = _shared_video(items, device) if share_video else _padded_videos(items)
    word_mask = word_ids > 0
    batch = Batch(
        video=video,
        video_mask=video_mask,
        words=torch.from_numpy(vectors)[word_ids] * word_mask[..., None],
        word_mask=word_mask,
        word_ids=word_ids,
        duration=torch.tensor([it["duration"] for it in items], dtype=torch.float32),
        video_group=group,
        index=torch.tensor([it["index"] for it in items], dtype=torch.long),
        num_videos=len(groups),
        word_lengths=tuple(len(it["word_ids"]) for it in items),
        video_lengths=tuple(int(it["video"].shape[0]) for it in items),
    )
    if "window" in items[0]:
        batch.windows = torch.stack([it["window"] for it in items])
    if "point" in items[0]:
        batch.point = torch.tensor([it["point"] for it in items], dtype=torch.float32)
    return batch.to(device) if device is not None else batch  # a video already there is not copied again


def _padded_videos(items: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every item's video copied into one zero-padded [B, T, D] tensor, with its mask of valid clips."""
    B = len(items)
    T = max(it["video"].shape[0] for it in items)
    D = items[0]["video"].shape[1]
    video = torch.zeros(B, T, D)
    video_mask = torch.zeros(B, T, dtype=torch.bool)
    for b, it in enumerate(items):
        t = it["video"].shape[0]
        video[b, :t] = it["video"]
        video_mask[b, :t] = True
    return video, video_mask


def _shared_video(items: Sequence[dict[str, Any]], device: Optional[Device]) -> tuple[torch.Tensor, torch.Tensor]:
    """The one video of all items on ``device``, as a [B, T, D] view that every row shares (no copy per row)."""
    B, first = len(items), items[0]["video"]
    if any(it["video"] is not first for it in items):
        raise ValueError("share_video: the items hold more than one video")
    video = torch.as_tensor(first, dtype=torch.float32).to(device or "cpu")
    T = video.shape[0]
    mask = torch.ones(1, T, dtype=torch.bool, device=video.device)
    return video[None].expand(B, -1, -1), mask.expand(B, -1)
