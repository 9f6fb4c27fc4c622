"""Dataset items and batches: padding, masks, groups, and labels only where supervision allows."""

import pytest
import torch

from momentloc.data.dataset import GroundingDataset, VideoCentricSampler, VideoOrderSampler
from momentloc.data.features import FeatureStore
from momentloc.data.formats.activitynet import parse_activitynet
from momentloc.data.formats.didemo import parse_didemo
from momentloc.data.points import generate_glance
from momentloc.data.text import load_glove_pickle


@pytest.fixture(scope="module")
def parts(tiny_synth):
    pairs = parse_activitynet(tiny_synth / "train.json")
    return pairs, FeatureStore(tiny_synth / "features.hdf5", dim=16), load_glove_pickle(tiny_synth / "glove.pkl")


def _batch(ds, n=6):
    return ds.collate([ds[i] for i in range(n)])


def test_full_batch_has_window_only(parts):
    pairs, store, vocab = parts
    b = _batch(GroundingDataset(pairs, store, vocab, "full"))
    assert b.windows is not None and b.point is None
    assert b.windows.shape == (6, 2)
    assert b.video.shape[0] == 6 and b.video_mask.dtype == torch.bool
    # padded clips are zero, and valid clips form a prefix
    lengths = b.video_mask.sum(1)
    for i, n in enumerate(lengths.tolist()):
        assert b.video_mask[i, :n].all() and not b.video_mask[i, n:].any()
        assert b.video[i, n:].abs().sum() == 0
    assert (b.words.abs().sum(-1) > 0).eq(b.word_mask).all()


def test_weak_batch_has_no_time(parts):
    pairs, store, vocab = parts
    b = _batch(GroundingDataset(pairs, store, vocab, "weak"))
    assert b.windows is None and b.point is None


def test_point_batch_has_point_only(parts):
    pairs, store, vocab = parts
    ds = GroundingDataset(generate_glance(pairs, 0), store, vocab, "point")
    b = _batch(ds)
    assert b.windows is None and b.point is not None
    for i in range(6):
        s, e = pairs[i].window
        assert s <= float(b.point[i]) <= e


def test_point_without_labels_is_an_error(parts):
    pairs, store, vocab = parts
    with pytest.raises(Exception, match="no point label"):
        GroundingDataset(pairs, store, vocab, "point")


def test_same_video_same_group(parts):
    pairs, store, vocab = parts
    ds = GroundingDataset(pairs, store, vocab, "weak")
    b = _batch(ds, 8)
    vids = [pairs[i].video_id for i in range(8)]
    for i in range(8):
        for j in range(8):
            assert (vids[i] == vids[j]) == bool(b.video_group[i] == b.video_group[j])


def test_resampling_to_fixed_clips(parts):
    pairs, store, vocab = parts
    b = _batch(GroundingDataset(pairs, store, vocab, "full", num_clips=16))
    assert b.video.shape[1] == 16 and b.video_mask.all()


def test_video_centric_sampler_covers_every_query_once(parts):
    pairs = parts[0]
    s = VideoCentricSampler(pairs, videos_per_batch=3, queries_per_video=2, seed=1)
    seen = [i for batch in s for i in batch]
    assert sorted(seen) == list(range(len(pairs)))
    for batch in s:
        per_video = {}
        for i in batch:
            per_video.setdefault(pairs[i].video_id, []).append(i)
        assert len(per_video) <= 3 * 2  # two chunks of one video may meet in a batch


def test_video_centric_sampler_shards_ranks(parts):
    pairs = parts[0]
    a = list(VideoCentricSampler(pairs, 2, 2, seed=0, rank=0, world=2))
    b = list(VideoCentricSampler(pairs, 2, 2, seed=0, rank=1, world=2))
    assert len(a) == len(b)
    assert not set(i for x in a for i in x) & set(i for x in b for i in x)


def _video_runs(pairs, order) -> int:
    vids = [pairs[i].video_id for i in order]
    return sum(1 for j, v in enumerate(vids) if j == 0 or v != vids[j - 1])


def test_eval_order_groups_the_queries_of_a_video(need_file):
    """DiDeMo's test file interleaves its videos' queries (3,995 runs of one video for 1,037 videos);
    the evaluation order puts each video's queries together, every query once."""
    pairs = parse_didemo(need_file("didemo/test_data.json"))
    assert _video_runs(pairs, range(len(pairs))) > 3 * len({p.video_id for p in pairs})
    order = list(VideoOrderSampler(pairs))
    assert sorted(order) == list(range(len(pairs)))
    assert _video_runs(pairs, order) == len({p.video_id for p in pairs})


@pytest.mark.parametrize("world", [2, 3, 7])
def test_eval_order_shards_ranks_contiguously(parts, world):
    pairs = parts[0]
    shards = [list(VideoOrderSampler(pairs, rank=r, world=world)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # ranks step in lockstep
    assert len(shards[0]) * world - len(pairs) < world  # padding: fewer than one row per rank
    flat = [i for s in shards for i in s]
    assert flat[: len(pairs)] == list(VideoOrderSampler(pairs))  # one order, cut into pieces
    assert set(flat) == set(range(len(pairs)))
