"""Batched NMS, Soft-NMS and top-k against hand-computed values and a plain greedy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from momentloc.decode import nms, soft_nms, to_moments, topk_segments
from momentloc.metrics import pairwise_iou, temporal_iou

SEGS = torch.tensor([[[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 5.0]]])
SCORES = torch.tensor([[0.9, 0.8, 0.7, 0.6]])
# IoU to [0,10]: [1,10] 0.9, [20,30] 0, [0,5] 0.5; IoU([1,10], [0,5]) = 0.4.


def test_nms_hand_case() -> None:
    segs, scores, valid = nms(SEGS, SCORES, iou_threshold=0.5, k=3)
    assert segs.tolist() == [[[0, 10], [20, 30], [0, 5]]]  # [1,10] suppressed; 0.5 is not > 0.5: kept
    assert scores[0].tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert valid.tolist() == [[True, True, True]]
    segs, _, valid = nms(SEGS, SCORES, iou_threshold=0.45, k=4)
    assert segs[0, :2].tolist() == [[0, 10], [20, 30]]
    assert valid.tolist() == [[True, True, False, False]]  # padded rows
    assert segs[0, 2:].abs().sum() == 0


def test_nms_batched_rows_are_independent_and_masked() -> None:
    segs = torch.cat([SEGS, SEGS.flip(1)], dim=0)
    scores = torch.cat([SCORES, SCORES], dim=0)
    mask = torch.tensor([[True, True, True, True], [True, True, False, True]])
    out, sc, valid = nms(segs, scores, 0.5, k=4, valid=mask)
    assert out[0, :3].tolist() == [[0, 10], [20, 30], [0, 5]]
    # Row 1 is [[0,5] .9, [20,30] .8, masked, [0,10] .6]: [0,10] has IoU 0.5 with [0,5], kept.
    assert out[1, :3].tolist() == [[0, 5], [20, 30], [0, 10]] and valid[1].tolist() == [True, True, True, False]


def test_unbatched_inputs() -> None:
    segs, scores, valid = nms(SEGS[0], SCORES[0], 0.5, k=2)
    assert segs.shape == (2, 2) and scores.shape == (2,) and valid.shape == (2,)


def test_soft_nms_gaussian_hand_values() -> None:
    segs, scores, valid = soft_nms(SEGS, SCORES, k=4, method="gaussian", sigma=0.5)
    assert segs.tolist() == [[[0, 10], [20, 30], [0, 5], [1, 10]]]
    s11 = 0.8 * math.exp(-0.81 / 0.5)  # [1,10] after [0,10]
    s05 = 0.6 * math.exp(-0.25 / 0.5)  # [0,5] after [0,10]
    expected = [0.9, 0.7, s05, s11 * math.exp(-0.16 / 0.5)]
    assert scores[0].tolist() == pytest.approx(expected, rel=1e-6)
    assert valid.all()


def test_soft_nms_linear_hand_values_and_threshold() -> None:
    _, scores, _ = soft_nms(SEGS, SCORES, k=4, method="linear", iou_threshold=0.3)
    # [1,10]: 0.8 * (1 - 0.9) = 0.08, then * (1 - 0.4) after [0,5]; [0,5]: 0.6 * (1 - 0.5).
    assert scores[0].tolist() == pytest.approx([0.9, 0.7, 0.3, 0.048], rel=1e-6)
    _, scores, valid = soft_nms(SEGS, SCORES, k=4, method="linear", iou_threshold=0.3, score_threshold=0.1)
    assert valid.tolist() == [[True, True, True, False]]  # 0.08 < 0.1 was dropped
    with pytest.raises(ValueError):
        soft_nms(SEGS, SCORES, k=2, method="cubic")  # type: ignore[arg-type]


def test_topk_segments() -> None:
    segs, scores, valid = topk_segments(SEGS, torch.tensor([[0.1, 0.5, 0.5, 0.9]]), k=5)
    assert segs[0, :4].tolist() == [[0, 5], [1, 10], [20, 30], [0, 10]]  # ties keep input order
    assert valid.tolist() == [[True, True, True, True, False]]


def greedy_reference(segs: list[list[float]], scores: list[float], thr: float, k: int) -> list[int]:
    """Plain-Python greedy NMS: the indices kept, in order."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if len(kept) == k:
            break
        if all(float(temporal_iou(np.array(segs[i]), np.array(segs[j]))) <= thr for j in kept):
            kept.append(i)
    return kept


segment = st.tuples(st.integers(0, 50), st.integers(1, 20)).map(lambda t: [float(t[0]), float(t[0] + t[1])])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(segment, st.integers(0, 1000)), min_size=1, max_size=25),
    st.sampled_from([0.3, 0.5, 0.7]),
    st.integers(1, 8),
)
def test_nms_properties(items: list, thr: float, k: int) -> None:
    segs = [s for s, _ in items]
    scores = [float(v) for _, v in items]
    # float64 throughout, so that IoU == threshold compares the same way here and in the reference.
    f64 = torch.float64
    out, out_scores, valid = nms(torch.tensor([segs], dtype=f64), torch.tensor([scores], dtype=f64), thr, k)
    kept = out[0][valid[0]]
    assert len(kept) <= k
    if len(kept) > 1:
        iou = pairwise_iou(kept, kept)
        off_diag = iou[~torch.eye(len(kept), dtype=torch.bool)]
        assert bool((off_diag <= thr).all())  # no kept pair above the threshold
    kept_scores = out_scores[0][valid[0]]
    assert bool((kept_scores[1:] <= kept_scores[:-1]).all())
    expected = greedy_reference(segs, scores, thr, k)
    assert kept.tolist() == [segs[i] for i in expected]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(segment, st.floats(0.01, 1.0)), min_size=1, max_size=20), st.integers(1, 6))
def test_soft_nms_keeps_min_k_n_and_never_raises_scores(items: list, k: int) -> None:
    segs = torch.tensor([[s for s, _ in items]])
    scores = torch.tensor([[v for _, v in items]], dtype=torch.float64)
    out, out_scores, valid = soft_nms(segs, scores, k)
    assert int(valid.sum()) == min(k, len(items))
    assert float(out_scores[valid].max()) <= float(scores.max()) + 1e-12


def test_to_moments_keeps_valid_rows_in_order_and_clips_to_the_duration() -> None:
    segs = torch.tensor([[[1.0, 3.0], [5.0, 4.0], [-1.0, 12.0]], [[0.0, 2.0], [2.0, 9.0], [0.0, 0.0]]])
    scores = torch.tensor([[0.9, 0.5, 0.2], [0.8, 0.7, 0.0]])
    valid = torch.tensor([[True, True, True], [True, False, False]])
    got = to_moments(segs, scores, valid, torch.tensor([10.0, 8.0]))
    assert [(m.start, m.end) for m in got[0]] == [(1.0, 3.0), (4.0, 5.0), (0.0, 10.0)]
    assert [m.score for m in got[0]] == pytest.approx([0.9, 0.5, 0.2])
    assert [(m.start, m.end) for m in got[1]] == [(0.0, 2.0)]
    unclipped = to_moments(segs, scores, valid)
    assert (unclipped[0][2].start, unclipped[0][2].end) == (-1.0, 12.0)
