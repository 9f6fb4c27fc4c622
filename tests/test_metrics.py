"""Metrics against hand-computed values, properties, and upper bounds on the shipped annotations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from momentloc.data import formats
from momentloc.metrics import didemo as dd
from momentloc.metrics import (
    breakdown_metrics,
    evaluate_moments,
    format_table,
    localization_metrics,
    pairwise_iou,
    temporal_iou,
)
from momentloc.metrics.iou import hull_iou
from momentloc.metrics.qvhighlights import (
    detection_ap,
    interpolated_ap,
    load_qvh_saliency,
    qvh_highlight_metrics,
    qvh_moment_metrics,
    saliency_ap,
)
from momentloc.types import Moment, Pair

# --------------------------------------------------------------------------- IoU


def test_iou_hand_values_numpy_and_torch() -> None:
    a = np.array([[0, 10], [0, 2], [3, 7], [4, 4]], dtype=float)
    b = np.array([[5, 15], [2, 4], [3, 7], [4, 4]], dtype=float)
    expected = [1 / 3, 0.0, 1.0, 0.0]  # touching windows: 0; zero-length union: 0
    np.testing.assert_allclose(temporal_iou(a, b), expected)
    got = temporal_iou(torch.tensor(a), torch.tensor(b))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), expected)


def test_pairwise_iou_shapes() -> None:
    a = np.array([[0, 10], [20, 30]], dtype=float)
    b = np.array([[5, 15], [0, 10], [25, 30]], dtype=float)
    iou = pairwise_iou(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1 / 3, 1.0, 0.0], [0.0, 0.0, 0.5]])
    batched = pairwise_iou(torch.tensor(a)[None].repeat(4, 1, 1), torch.tensor(b)[None].repeat(4, 1, 1))
    assert batched.shape == (4, 2, 3)


windows = st.tuples(st.floats(0, 100, allow_nan=False), st.floats(0, 100, allow_nan=False)).map(lambda t: sorted(t))


@settings(max_examples=200, deadline=None)
@given(windows, windows)
def test_iou_in_unit_interval_and_symmetric(a: list[float], b: list[float]) -> None:
    x, y = float(temporal_iou(np.array(a), np.array(b))), float(temporal_iou(np.array(b), np.array(a)))
    assert 0.0 <= x <= 1.0
    assert x == y
    if a == b and a[1] > a[0]:
        assert x == 1.0


@settings(max_examples=200, deadline=None)
@given(windows, windows)
def test_hull_form_is_the_same_iou_up_to_rounding(a: list[float], b: list[float]) -> None:
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    assert float(hull_iou(ta, tb)) == pytest.approx(float(temporal_iou(ta, tb)), abs=1e-12)


def test_grid_ties_fall_differently_in_the_two_forms() -> None:
    # Why the prior keeps the hull form: on its 20-bin grid in float32, IoU == 0.5 ties round apart.
    idx = torch.arange(20)
    s, e = torch.meshgrid(idx, idx, indexing="ij")
    keep = s <= e
    cells = torch.stack([s[keep], e[keep] + 1], 1).float() / 20
    hull = hull_iou(cells[:, None], cells[None]) >= 0.5
    assert not torch.equal(hull, temporal_iou(cells[:, None], cells[None]) >= 0.5)


# ------------------------------------------------------------------ R@n, mIoU


def test_recall_and_miou_hand_case() -> None:
    gts = [[(0, 10)], [(10, 20)]]
    preds = [
        [(0, 5), (0, 10)],  # IoU 0.5 (exactly at the threshold), then 1.0
        [(0, 10), (12, 20), (15, 20)],  # IoU 0, 0.8, 0.5
    ]
    m = localization_metrics(preds, gts)
    assert m["R1@0.5"] == 50.0  # IoU == 0.5 counts as a hit (>=)
    assert m["R1@0.7"] == 0.0
    assert m["R1@0.1"] == 50.0
    assert m["R5@0.5"] == 100.0
    assert m["R5@0.7"] == 100.0
    assert m["mIoU"] == pytest.approx(25.0)
    assert m["n"] == 2


def test_several_windows_take_the_best_match() -> None:
    m = localization_metrics([[(10, 18)]], [[(0, 4), (10, 20)]])
    assert m["mIoU"] == pytest.approx(80.0)
    assert m["R1@0.7"] == 100.0


def test_missing_predictions_are_misses() -> None:
    m = localization_metrics([[], [(0, 10)]], [[(0, 10)], [(0, 10)]])
    assert m["R1@0.1"] == 50.0 and m["R5@0.1"] == 50.0 and m["mIoU"] == 50.0


def test_breakdowns_and_table() -> None:
    pairs = [
        Pair("a", 100.0, "q", ((0.0, 5.0),)),  # 5% of the video: short; 100 s video: medium
        Pair("b", 20.0, "q", ((0.0, 10.0),)),  # 50%: long; 20 s video: short
    ]
    moments = [[Moment(0, 5, 1.0)], [Moment(10, 20, 1.0)]]
    m = evaluate_moments(pairs, moments)
    assert m["R1@0.5"] == 50.0
    assert m["moment-short/R1@0.5"] == 100.0 and m["moment-short/n"] == 1
    assert m["moment-long/R1@0.5"] == 0.0
    assert m["moment-medium/n"] == 0 and math.isnan(m["moment-medium/mIoU"])
    assert m["video-short/R1@0.5"] == 0.0 and m["video-medium/R1@0.5"] == 100.0
    table = format_table(m)
    assert "moment-short" in table and "R1@0.5" in table and "100.00" in table
    assert breakdown_metrics([[(0, 5)]], pairs[:1])["moment-short/mIoU"] == 100.0


# ---------------------------------------------------------------------- DiDeMo


def test_didemo_segments_and_chunk_iou() -> None:
    assert len(dd.DIDEMO_SEGMENTS) == 21
    assert dd.DIDEMO_SEGMENTS[:6] == tuple((i, i) for i in range(6))
    assert dd.DIDEMO_SEGMENTS[6] == (0, 1) and dd.DIDEMO_SEGMENTS[-1] == (4, 5)
    assert dd.chunk_iou((0, 1), (1, 2)) == pytest.approx(1 / 3)  # = IoU of [0,10] and [5,15] s
    assert dd.window_to_chunks(20.0, 25.0) == (4, 4)
    assert dd.window_to_chunks(20.0, 27.3) == (4, 5)  # an end capped at the video length


def test_nearest_segment() -> None:
    assert dd.DIDEMO_SEGMENTS[int(dd.nearest_segment([3.0, 12.0]))] == (0, 2)  # IoU 0.6 beats 0.583
    # Uncapped, [20, 27] is nearest (4,4) (IoU 5/7 > 7/10); in a 27-s video it is (4,5) exactly.
    assert dd.DIDEMO_SEGMENTS[int(dd.nearest_segment([20.0, 27.0]))] == (4, 4)
    assert dd.DIDEMO_SEGMENTS[int(dd.nearest_segment([20.0, 27.0], duration=27.0))] == (4, 5)
    many = dd.nearest_segment(dd.segment_times())
    assert list(many) == list(range(21))


def test_didemo_best_three_annotators_hand_case() -> None:
    idx = dd.SEGMENT_INDEX
    annotators = [
        [(0, 0), (0, 0), (1, 1), (3, 4)],
        [(2, 3)] * 4,
        [(0, 1), (0, 1), (0, 1), (5, 5)],
    ]
    rankings = [
        [idx[(0, 0)], idx[(1, 1)]],  # ranks 1, 1, 2, inf -> best 3 average 4/3; IoUs 1, 1, 0, 0 -> 2/3
        [idx[(2, 2)], idx[(2, 3)]],  # ranks 2, 2, 2, 2 -> 2; IoU of (2,2) with (2,3) = 1/2
        [idx[(0, 1)]],  # ranks 1, 1, 1 -> 1; IoUs 1, 1, 1 -> 1
    ]
    m = dd.didemo_metrics(rankings, annotators)
    assert m["Rank@1"] == pytest.approx(100 / 3)
    assert m["Rank@5"] == pytest.approx(100.0)
    assert m["mIoU"] == pytest.approx(100 * (2 / 3 + 1 / 2 + 1) / 3)


def test_didemo_drops_only_the_worst_annotator() -> None:
    # Four different annotators: the top-1 (0,0) matches one of them. The
    # official rule averages the best 3 IoUs (1, 0, 0) -> 1/3; an average of
    # "best match within each 3-subset" would give 3/4 instead.
    avg_rank, avg_iou = dd.query_scores([0, 1, 2, 3], [(0, 0), (1, 1), (2, 2), (3, 3)])
    assert avg_iou == pytest.approx(1 / 3)
    assert avg_rank == pytest.approx(2.0)
    # Missing segments rank at infinity; an empty ranking is a miss with IoU 0.
    assert dd.query_scores([], [(0, 0)] * 4) == (math.inf, 0.0)


def test_didemo_oracle_and_complete_ranking() -> None:
    # (1,2) has chunk IoUs 1/2, 1, 1/2, 0 -> best-3 mean 2/3, above any annotated segment's 1/2.
    ranking = dd.oracle_ranking([(1, 1), (1, 2), (2, 2), (5, 5)])
    assert sorted(ranking) == list(range(21))
    assert dd.DIDEMO_SEGMENTS[ranking[0]] == (1, 2)
    # Ties in IoU (here every candidate scores 1/3) go to a segment an annotator chose.
    assert dd.DIDEMO_SEGMENTS[dd.oracle_ranking([(0, 0), (1, 1), (2, 2), (3, 3)])[0]] == (0, 0)
    full = dd.complete_ranking([5, 5, 0])
    assert full[:2] == [5, 0] and sorted(full) == list(range(21))
    assert full[2] == dd.SEGMENT_INDEX[(4, 5)]  # nearest to the top-1 (5,5) comes next
    assert dd.complete_ranking([]) == [] and dd.moments_to_ranking([]) == []  # nothing predicted: a miss
    assert dd.moments_to_ranking([Moment(5, 10, 1.0)])[0] == dd.SEGMENT_INDEX[(1, 1)]


# ----------------------------------------------------------------- QVHighlights


def test_interpolated_ap() -> None:
    assert interpolated_ap(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Precision is made non-increasing: the dip to 1/2 at recall 1/2 is lifted to 1.
    batch = interpolated_ap(np.array([[0.5, 1.0], [1.0, 1.0]]), np.array([[0.25, 0.5], [0.5, 1.0]]))
    np.testing.assert_allclose(batch, [0.5, 1.0])


def test_qvh_moment_map_hand_case() -> None:
    gt = [[(0, 10), (20, 30)]]
    # [0,10] takes GT 1 (IoU 1); [1,10] (IoU 0.9) finds GT 1 taken: false positive;
    # [20,26] has IoU 0.6 with GT 2: a hit for thresholds 0.50..0.60.
    preds = [[(1, 10, 0.8), (20, 26, 0.7), (0, 10, 0.9)]]  # any order: ranked by score
    ap = detection_ap([(0, 10), (1, 10), (20, 26)], [0.9, 0.8, 0.7], gt[0])
    np.testing.assert_allclose(ap, [5 / 6] * 3 + [0.5] * 7)
    m = qvh_moment_metrics(preds, gt)
    assert m["mAP"] == pytest.approx(60.0)
    assert m["mAP@0.5"] == pytest.approx(250 / 3)
    assert m["mAP@0.75"] == pytest.approx(50.0)
    assert m["R1@0.5"] == 100.0 and m["R1@0.7"] == 100.0
    # A second query with no prediction has AP 0 and halves the mean.
    m2 = qvh_moment_metrics(preds + [[]], gt + [[(0, 10)]])
    assert m2["mAP"] == pytest.approx(30.0) and m2["R1@0.5"] == 50.0


def test_qvh_map_falls_back_to_next_best_window() -> None:
    # [2,12] has IoU 2/3 with the taken GT [0,10], and 7/13 with the free [5,15].
    ap = detection_ap([(0, 10), (2, 12)], [0.9, 0.8], [(0, 10), (5, 15)], thresholds=(0.5, 0.55))
    np.testing.assert_allclose(ap, [1.0, 0.5])


def test_qvh_max_predictions_and_length_ranges() -> None:
    gt = [[(2.0 * i, 2.0 * i + 1) for i in range(12)]]
    preds = [[(s, e, 1.0) for s, e in gt[0]]]
    assert qvh_moment_metrics(preds, gt)["mAP"] == pytest.approx(100 * 10 / 12)  # only 10 count
    assert qvh_moment_metrics(preds, gt, max_predictions=None)["mAP"] == pytest.approx(100.0)
    m = qvh_moment_metrics([[(0, 40, 1.0)]], [[(0, 40), (50, 55)]])
    assert m["mAP-long"] == 100.0 and m["mAP-short"] == 0.0 and math.isnan(m["mAP-middle"])


def test_saliency_ap_hand_cases() -> None:
    assert saliency_ap([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    # Tied scores enter together: precision 1/2 at recall 1/2 is never seen alone.
    assert saliency_ap([1, 0, 1], [0.5, 0.5, 0.1]) == pytest.approx(2 / 3)
    assert saliency_ap([0, 0, 0], [0.3, 0.2, 0.1]) == 0.0
    assert saliency_ap([1, 1], [0.3, 0.2]) == 1.0


def test_highlight_hit_and_map_hand_case() -> None:
    gt = np.array([[4, 0, 0], [3, 3, 3], [0, 0, 0]], dtype=float)  # 3 clips x 3 annotators
    m = qvh_highlight_metrics([[0.9, 0.1, 0.5]], [gt])
    assert m["HL-HIT@1"] == 100.0  # clip 0 has one "Very Good" (4)
    assert m["HL-mAP"] == pytest.approx(100 / 3)  # annotator 0: AP 1; 1 and 2 have no positive: 0
    assert qvh_highlight_metrics([[0.1, 0.9, 0.5]], [gt])["HL-HIT@1"] == 0.0  # 3 is not >= 4
    assert qvh_highlight_metrics([[0.1, 0.9]], [gt])["HL-HIT@1"] == 0.0  # short predictions are padded
    assert qvh_highlight_metrics([None], [gt]) == {"HL-mAP": 0.0, "HL-HIT@1": 0.0}


# ------------------------------------------------------------- shipped annotations


@pytest.mark.realdata
def test_charades_perfect_predictions_score_100(need_file) -> None:
    need_file("charades_sta/charades_sta_test.txt")
    pairs = formats.load_pairs("charades_sta", "test")
    m = evaluate_moments(pairs, [[Moment(*p.window, 1.0)] for p in pairs])
    assert m["R1@0.7"] == 100.0 and m["R5@0.7"] == 100.0 and m["mIoU"] == pytest.approx(100.0)
    assert m["moment-short/n"] + m["moment-medium/n"] + m["moment-long/n"] == len(pairs)


@pytest.mark.realdata
def test_didemo_oracle_upper_bound(need_file) -> None:
    need_file("didemo/test_data.json")
    pairs = formats.load_pairs("didemo", "test")
    annotators = [[dd.window_to_chunks(s, e) for s, e in p.annotator_windows] for p in pairs]
    m = dd.didemo_metrics([dd.oracle_ranking(a) for a in annotators], annotators)
    # Known upper bound of the protocol on the test split: 74.76 / 100 / 96.05.
    assert m["Rank@1"] == pytest.approx(74.7575, abs=1e-3)
    assert m["Rank@5"] == 100.0
    assert m["mIoU"] == pytest.approx(96.0517, abs=1e-3)


@pytest.mark.realdata
def test_qvh_perfect_predictions(need_file) -> None:
    path = need_file("qvhighlights/highlight_val_release.jsonl")
    pairs = formats.load_pairs("qvhighlights", "val")
    preds = [[(s, e, 1.0) for s, e in p.windows] for p in pairs]
    m = qvh_moment_metrics(preds, [p.windows for p in pairs], max_predictions=None)
    assert m["mAP"] == pytest.approx(100.0) and m["R1@0.7"] == 100.0
    # With the official 10-prediction cap, the 13 queries with more windows lose recall.
    assert 99.0 < qvh_moment_metrics(preds, [p.windows for p in pairs])["mAP"] < 100.0
    table = load_qvh_saliency(path)
    gts = [table[p.query_id] for p in pairs]
    assert all(g.shape == (int(p.duration / 2), 3) for g, p in zip(gts, pairs))
    # Scoring clips with annotator 0's own scores is a perfect ranking for annotator 0.
    per0 = [saliency_ap((g[:, 0] >= 4).astype(float), g[:, 0]) for g in gts if (g[:, 0] >= 4).any()]
    assert np.allclose(per0, 1.0)
    hl = qvh_highlight_metrics([g.sum(axis=1) for g in gts], gts)
    assert 0.0 < hl["HL-mAP"] < 100.0 and hl["HL-HIT@1"] > 50.0
