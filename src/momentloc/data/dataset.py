"""GroundingDataset: pairs + feature store + vocabulary -> typed batches, labels by supervision."""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from momentloc.data.batch import collate
from momentloc.data.crop import crop_items
from momentloc.data.features import FeatureStore, prepare_clips
from momentloc.data.text import Vocabulary
from momentloc.errors import DataError
from momentloc.types import SUPERVISIONS, Batch, Pair, rows_by_video


class GroundingDataset(Dataset):
    """Items for one split. Labels a model may not see are never put in an item.

    ``supervision="full"`` gives the first window, ``"point"`` only the point,
    ``"weak"`` no time at all; the ground truth for scoring stays in
    ``self.pairs`` and is looked up by ``Batch.index``.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        store: FeatureStore,
        vocab: Vocabulary,
        supervision: str = "full",
        num_clips: Optional[int] = None,
        max_clips: Optional[int] = None,
        max_words: int = 32,
        normalize: bool = False,
        cache_videos: int = 4096,
        crop: Optional[tuple[float, float]] = None,
        crop_keep: float = 0.5,
    ) -> None:
        if supervision not in SUPERVISIONS:
            raise ValueError(f"supervision must be one of {SUPERVISIONS}, got {supervision!r}")
        self.pairs = list(pairs)
        self.store = store
        self.vocab = vocab
        self.supervision = supervision
        self.num_clips = num_clips
        self.max_clips = max_clips
        self.max_words = max_words
        self.normalize = normalize
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_videos
        self.crop, self.crop_keep = crop, crop_keep  # random crops of each batch's videos (training)
        store.check_ids(p.video_id for p in self.pairs)
        if supervision == "point":
            missing = [i for i, p in enumerate(self.pairs) if p.point is None]
            if missing:
                raise DataError(None, f"{len(missing)} pair(s) have no point label (first: pair {missing[0]}); "
                                "set data.glance or generate points with `momentloc data glance`")
        elif supervision == "full":
            missing = [i for i, p in enumerate(self.pairs) if not p.windows]
            if missing:
                raise DataError(None, f"{len(missing)} pair(s) have no window (first: pair {missing[0]})")
        self._tokens = [vocab.encode(p.query, max_words)[0] for p in self.pairs]
        empty = [i for i, t in enumerate(self._tokens) if len(t) == 0]
        if empty:
            p = self.pairs[empty[0]]
            raise DataError(None, f"{len(empty)} quer(ies) have no words (first: {p.query_id or p.video_id!r}: {p.query!r})")

    def __len__(self) -> int:
        return len(self.pairs)

    def video_features(self, video_id: str) -> torch.Tensor:
        """[T, D] features of one video after resampling / capping / normalising (cached)."""
        hit = self._cache.get(video_id)
        if hit is not None:
            self._cache.move_to_end(video_id)
            return hit
        arr = prepare_clips(self.store.get(video_id), self.num_clips, self.max_clips, self.normalize)
        feats = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True))
        self._cache[video_id] = feats
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return feats

    def __getitem__(self, i: int) -> dict:
        p = self.pairs[i]
        item = {
            "index": i,
            "video_id": p.video_id,
            "video": self.video_features(p.video_id),
            "word_ids": torch.from_numpy(self._tokens[i]),
            "duration": float(p.duration),
        }
        if self.supervision == "full":
            item["window"] = torch.tensor(p.window, dtype=torch.float32)
        elif self.supervision == "point":
            item["point"] = float(p.point)  # type: ignore[arg-type]
        return item

    def collate(self, items: list[dict]) -> Batch:
        """Pad a list of items into a ``Batch`` (masks mark the valid prefix), each video cropped once if asked."""
        if self.crop is not None:
            items = crop_items(items, self.crop, self.crop_keep)
        return collate(items, self.vocab.vectors)


class VideoCentricSampler(Sampler[list[int]]):
    """Batches of ``videos_per_batch`` videos with up to ``queries_per_video`` queries each.

    Every query of every video is visited once per epoch (a video with many
    queries appears in several batches); the order is seeded per epoch.
    """

    def __init__(
        self, pairs: Sequence[Pair], videos_per_batch: int, queries_per_video: int, seed: int = 0,
        shuffle: bool = True, rank: int = 0, world: int = 1,
    ) -> None:
        self.by_video = rows_by_video(p.video_id for p in pairs)
        self.vpb = max(1, videos_per_batch)
        self.qpv = max(1, queries_per_video)
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.rank, self.world = rank, max(1, world)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the order for a new epoch."""
        self.epoch = epoch

    def _chunks(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1000003 + self.epoch)
        chunks = []
        for vid in sorted(self.by_video):
            idx = list(self.by_video[vid])
            if self.shuffle:
                rng.shuffle(idx)
            chunks.extend(idx[i : i + self.qpv] for i in range(0, len(idx), self.qpv))
        if self.shuffle:
            rng.shuffle(chunks)
        return chunks

    def _batches(self) -> list[list[int]]:
        chunks = self._chunks()
        batches = [[j for c in chunks[i : i + self.vpb] for j in c] for i in range(0, len(chunks), self.vpb)]
        # Every rank gets the same number of batches (DDP steps in lockstep).
        per_rank = len(batches) // self.world if self.world > 1 else len(batches)
        return batches[self.rank :: self.world][:per_rank]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class VideoOrderSampler(Sampler[int]):
    """Evaluation order: each video's queries next to each other, one contiguous shard per rank.

    Videos keep the order in which they first appear; a batch then holds few
    distinct videos, and models encode each video once for all of its queries
    in the batch (``Batch.video_group``). With ``world`` ranks the list is cut
    into equal contiguous shards, the last padded with repeats from the start
    (they are dropped when the predictions are gathered by ``Batch.index``).
    """

    def __init__(self, pairs: Sequence[Pair], rank: int = 0, world: int = 1) -> None:
        order = [i for rows in rows_by_video(p.video_id for p in pairs).values() for i in rows]
        world = max(1, world)
        per_rank = -(-len(order) // world)
        if order and len(order) < per_rank * world:
            order = (order * world)[: per_rank * world]
        self.indices = order[rank * per_rank : (rank + 1) * per_rank]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def eval_loader(ds: GroundingDataset, batch_size: int, rank: int = 0, world: int = 1, workers: int = 0) -> DataLoader:
    """A loader over one rank's shard, queries grouped by video (padded with repeats, removed after gathering)."""
    sampler = VideoOrderSampler(ds.pairs, rank=rank, world=world)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=ds.collate, num_workers=workers)
