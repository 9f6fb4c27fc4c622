"""Core records shared by every part of momentloc: pairs, moments and batches."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Iterable, Optional

import torch


def rows_by_video(video_ids: Iterable[str]) -> dict[str, list[int]]:
    """The positions of each video's entries, videos in the order they first appear."""
    rows: dict[str, list[int]] = {}
    for i, vid in enumerate(video_ids):
        rows.setdefault(vid, []).append(i)
    return rows


@dataclass(frozen=True)
class Pair:
    """One (video, sentence) annotation; all times are seconds."""

    video_id: str
    duration: float
    query: str
    windows: tuple[tuple[float, float], ...] = ()
    point: Optional[float] = None
    query_id: Optional[str] = None
    # DiDeMo keeps every annotator's window; other datasets leave this empty.
    annotator_windows: tuple[tuple[float, float], ...] = ()
    # QVHighlights saliency: (clip index, mean annotator score) per relevant clip.
    saliency: tuple[tuple[int, float], ...] = ()

    @property
    def window(self) -> tuple[float, float]:
        """The first (primary) ground-truth window."""
        if not self.windows:
            raise ValueError(f"pair {self.query_id or self.query!r} has no window")
        return self.windows[0]


@dataclass(frozen=True)
class Moment:
    """A predicted moment in seconds with a score (higher is better)."""

    start: float
    end: float
    score: float

    def as_list(self) -> list[float]:
        """[start, end, score] as plain floats (the jsonl prediction format)."""
        return [float(self.start), float(self.end), float(self.score)]


SUPERVISIONS = ("full", "weak", "point")


@dataclass
class Batch:
    """A padded batch. Label fields are present only where the supervision allows.

    video [B,T,D], video_mask [B,T] (bool, True = valid), words [B,L,E],
    word_mask [B,L] (bool), word_ids [B,L] (long, 0 = pad, 1 = unknown),
    duration [B] seconds, video_group [B] (pairs with the same value share a
    video inside this batch), index [B] (the pairs' positions in the dataset).
    windows [B,2] seconds (full only), point [B] seconds (point only).
    num_videos: when set, ``video_group`` numbers the batch's videos 0 .. num_videos - 1
    (every number used, as ``collate`` numbers them), so the rows of each video are
    found without asking the device for ``torch.unique``. word_lengths / video_lengths:
    when set, the valid words / clips of each row, known on the host, so that packing
    a sequence for an RNN does not read them back from the device.
    """

    video: torch.Tensor
    video_mask: torch.Tensor
    words: torch.Tensor
    word_mask: torch.Tensor
    word_ids: torch.Tensor
    duration: torch.Tensor
    video_group: torch.Tensor
    index: torch.Tensor
    windows: Optional[torch.Tensor] = None
    point: Optional[torch.Tensor] = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    num_videos: Optional[int] = None
    word_lengths: Optional[tuple[int, ...]] = None
    video_lengths: Optional[tuple[int, ...]] = None

    @property
    def size(self) -> int:
        """Number of pairs in the batch."""
        return int(self.video.shape[0])

    def to(self, device: torch.device | str) -> "Batch":
        """A copy with every tensor on ``device``."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                moved[f.name] = value.to(device, non_blocking=True)
            elif isinstance(value, dict):
                moved[f.name] = {k: v.to(device, non_blocking=True) for k, v in value.items()}
        return replace(self, **moved)
