"""Random temporal crops of training videos, one per video of a batch (SnAG's training on long videos).

A crop keeps a contiguous run of clips whose length is drawn uniformly from
``ratio`` of the video's, placed uniformly among the positions that keep more
than ``keep`` of every labelled window of the batch's queries on that video (a
point label must stay inside). Windows are then cut to the crop and every
time is shifted to the crop's start; the queries of one video share one crop,
so models that encode a video once per batch (``Batch.video_group``) still can.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from momentloc.types import rows_by_video


def crop_bounds(n: int, spans: np.ndarray, ratio: tuple[float, float], keep: float,
                generator: Optional[torch.Generator] = None) -> tuple[int, int]:
    """Clips [start, stop) of a random crop of an ``n``-clip video; (0, n) when no crop keeps every span.

    ``spans`` [k, 2] are labelled windows in clip units; a zero-length span is a
    point, which must lie inside the crop.
    """
    lo = max(math.ceil(ratio[0] * n), 1)
    hi = min(math.ceil(ratio[1] * n), n)
    length = int(torch.randint(lo, max(lo, hi) + 1, (1,), generator=generator))
    if length >= n:
        return 0, n
    start = np.arange(n - length + 1, dtype=np.float64)[:, None]  # every position [P, 1]
    s, e = spans[None, :, 0], spans[None, :, 1]
    inside = (s >= start) & (e <= start + length)
    overlap = np.clip(np.minimum(e, start + length) - np.maximum(s, start), 0, None)
    kept = np.where(e > s, overlap > keep * (e - s), inside)
    ok = np.flatnonzero(kept.all(axis=1))
    if ok.size == 0:
        return 0, n
    first = int(ok[int(torch.randint(ok.size, (1,), generator=generator))])
    return first, first + length


def crop_items(items: list[dict], ratio: tuple[float, float], keep: float,
               generator: Optional[torch.Generator] = None) -> list[dict]:
    """Dataset items with each video cropped once for all of its items (new dicts; the inputs are not changed)."""
    out = list(items)
    for rows in rows_by_video(it["video_id"] for it in items).values():
        video = items[rows[0]]["video"]
        n, duration = video.shape[0], float(items[rows[0]]["duration"])
        clip = duration / n
        spans = [items[i]["window"].tolist() if "window" in items[i] else [items[i]["point"]] * 2
                 for i in rows if "window" in items[i] or "point" in items[i]]
        start, stop = crop_bounds(n, np.asarray(spans, dtype=np.float64).reshape(-1, 2) / clip, ratio, keep, generator)
        if (start, stop) == (0, n):
            continue
        shift, new_duration = start * clip, (stop - start) * clip
        for i in rows:
            it = dict(items[i], video=video[start:stop], duration=new_duration)
            if "window" in it:
                it["window"] = (it["window"] - shift).clamp(0.0, new_duration)
            if "point" in it:
                it["point"] = min(max(float(it["point"]) - shift, 0.0), new_duration)
            out[i] = it
    return out
