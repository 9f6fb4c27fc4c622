"""Random training crops: one crop per video of a batch, labelled windows kept, times shifted."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from momentloc.data.crop import crop_bounds, crop_items
from momentloc.data.dataset import GroundingDataset
from momentloc.data.features import FeatureStore
from momentloc.data.formats.activitynet import parse_activitynet
from momentloc.data.text import load_glove_pickle
from momentloc.types import rows_by_video


def test_crop_bounds_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    # A 10-clip video, crops of exactly 8 clips, one window over clips [1, 5): 3 positions (0, 1, 2) keep > half
    # of it, and each of them must appear.
    seen = {crop_bounds(10, np.array([[1.0, 5.0]]), (0.8, 0.8), 0.5, g) for _ in range(200)}
    assert seen == {(0, 8), (1, 9), (2, 10)}
    # A window that no 8-clip crop keeps more than 90 % of ([0, 10) is 10 clips long): no crop.
    assert crop_bounds(10, np.array([[0.0, 10.0]]), (0.8, 0.8), 0.9, g) == (0, 10)
    # A point must stay inside: only crops starting at or before clip 1 hold a point at clip 1.
    starts = {crop_bounds(10, np.array([[1.0, 1.0]]), (0.8, 0.8), 0.5, g)[0] for _ in range(200)}
    assert starts == {0, 1}


@pytest.fixture(scope="module")
def parts(tiny_synth):
    pairs = parse_activitynet(tiny_synth / "train.json")
    return pairs, FeatureStore(tiny_synth / "features.hdf5", dim=16), load_glove_pickle(tiny_synth / "glove.pkl")


def test_queries_of_a_video_share_one_crop_that_keeps_their_windows(parts) -> None:
    pairs, store, vocab = parts
    torch.manual_seed(0)
    ds = GroundingDataset(pairs, store, vocab, "full", crop=(0.5, 0.9), crop_keep=0.5)
    by_video = rows_by_video(p.video_id for p in pairs)
    rows = [i for v in list(by_video.values())[:4] for i in v[:3]]  # 4 videos, up to 3 queries each
    items = [ds[i] for i in rows]
    cropped = crop_items(items, (0.5, 0.9), 0.5)
    changed = 0
    for before, after in zip(items, cropped):
        n, m = before["video"].shape[0], after["video"].shape[0]
        assert math.ceil(0.5 * n) <= m <= n
        changed += m < n
        clip = before["duration"] / n
        assert after["duration"] == pytest.approx(m * clip)  # clips keep their length in seconds
        start = (after["video"].storage_offset() - before["video"].storage_offset()) // before["video"].shape[1]
        torch.testing.assert_close(after["video"], before["video"][start : start + m])  # a view: the crop's clips
        if start * clip <= float(before["window"][0]):
            assert float(after["window"][0]) == pytest.approx(float(before["window"][0]) - start * clip, abs=1e-5)
        s, e = before["window"].tolist()
        kept = min(e, (start + m) * clip) - max(s, start * clip)
        assert kept > 0.5 * (e - s)  # more than crop_keep of the window stays
        assert 0 <= after["window"][0] <= after["window"][1] <= after["duration"] + 1e-6
    assert changed > 0
    for vid in {it["video_id"] for it in items}:  # one crop per video
        same = [it for it in cropped if it["video_id"] == vid]
        assert len({(it["video"].shape[0], it["duration"]) for it in same}) == 1
        assert all(it["video"].data_ptr() == same[0]["video"].data_ptr() for it in same)
    batch = ds.collate(items)  # the dataset crops in collate
    assert batch.video.shape[1] <= max(it["video"].shape[0] for it in items)
    assert (batch.windows[:, 1] <= batch.duration + 1e-6).all()


def test_point_labels_stay_inside_the_crop(parts) -> None:
    pairs, store, vocab = parts
    from momentloc.data.points import generate_glance

    pts = generate_glance(pairs, seed=0)
    ds = GroundingDataset(pts, store, vocab, "point")
    torch.manual_seed(1)
    items = [ds[i] for i in range(12)]
    for _ in range(5):
        for it in crop_items(items, (0.5, 0.6), 0.5):
            assert 0.0 <= it["point"] <= it["duration"]


def test_only_the_training_set_is_cropped(tiny_synth) -> None:
    from _helpers import CONFIGS
    from conftest import tiny_overrides

    from momentloc.config import load_config
    from momentloc.data.sources import build_data

    cfg = load_config(CONFIGS / "span_synthetic_ci.yaml", tiny_overrides(tiny_synth, tiny_synth) + ["data.crop_ratio=[0.9,1.0]"])
    data = build_data(cfg.data, "full")
    assert data.train.crop == (0.9, 1.0) and data.val.crop is None


def test_unlabelled_items_are_cropped_anywhere(parts) -> None:
    pairs, store, vocab = parts
    ds = GroundingDataset(pairs, store, vocab, "weak")
    torch.manual_seed(2)
    items = [ds[i] for i in range(6)]
    cropped = crop_items(items, (0.5, 0.5), 0.5)
    for before, after in zip(items, cropped):
        n = before["video"].shape[0]
        assert after["video"].shape[0] == max(math.ceil(0.5 * n), 1)
        assert after["duration"] == pytest.approx(before["duration"] * after["video"].shape[0] / n)
