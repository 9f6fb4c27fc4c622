"""Within-scale (Eq. 11) and cross-scale (Eq. 12) contrastive objectives: sampling, InfoNCE by hand, plumbing."""

from __future__ import annotations

import math

import pytest
import torch

from momentloc.data.random_batch import random_batch
from momentloc.models.base import InputSpec, Output
from momentloc.models.snag import Snag, SnagConfig
from momentloc.objectives.multiscale_contrast import (
    ContrastConfig,
    CrossScaleContrast,
    WithinScaleContrast,
    build_samples,
    info_nce,
    sample_query_per_video,
    shuffled_strides,
)
from momentloc.registry import get_objective
from momentloc.types import Batch


def _ok(*shape: int) -> torch.Tensor:
    return torch.ones(*shape, dtype=torch.bool)


def test_registered_names() -> None:
    assert get_objective("within_scale") is WithinScaleContrast
    assert get_objective("cross_scale") is CrossScaleContrast


def test_cross_scale_info_nce_by_hand() -> None:
    cfg = ContrastConfig(similarity="dot", temperature=1.0)
    anchors = torch.tensor([[[1.0, 0.0]]])
    pos = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    neg = torch.tensor([[[-1.0, 0.0]]])
    total, count = info_nce(anchors, _ok(1, 1), pos, _ok(1, 2), neg, _ok(1, 1), cfg, exclude_self=False)
    # -log e^{a.p} / (e^{a.p} + e^{a.n}) with a.p = 1, 0 and a.n = -1.
    expected = -math.log(math.e / (math.e + math.exp(-1))) - math.log(1 / (1 + math.exp(-1)))
    assert count == 2 and math.isclose(float(total), expected, rel_tol=1e-6)


def test_within_scale_info_nce_skips_i_equals_j_by_hand() -> None:
    cfg = ContrastConfig(similarity="dot", temperature=0.5)
    pos = torch.tensor([[[1.0, 0.0], [0.6, 0.8]]])
    neg = torch.tensor([[[0.0, 1.0]]])
    total, count = info_nce(pos, _ok(1, 2), pos, _ok(1, 2), neg, _ok(1, 1), cfg, exclude_self=True)
    # (i=0, j=1): z_i.z_j = 0.6, z_i.z_n = 0; (i=1, j=0): 0.6 and 0.8; all over tau = 0.5.
    t01 = -math.log(math.exp(1.2) / (math.exp(1.2) + math.exp(0.0)))
    t10 = -math.log(math.exp(1.2) / (math.exp(1.2) + math.exp(1.6)))
    assert count == 2 and math.isclose(float(total), t01 + t10, rel_tol=1e-6)


def test_cosine_similarity_normalises_first() -> None:
    cfg = ContrastConfig(similarity="cosine", temperature=1.0)
    a = torch.tensor([[[3.0, 0.0]]])
    p = torch.tensor([[[0.0, 5.0]]])
    n = torch.tensor([[[-2.0, 0.0]]])
    total, _ = info_nce(a, _ok(1, 1), p, _ok(1, 1), n, _ok(1, 1), cfg, exclude_self=False)
    assert math.isclose(float(total), math.log(1 + math.exp(-1)), rel_tol=1e-6)


def test_invalid_entries_do_not_count() -> None:
    cfg = ContrastConfig(similarity="dot", temperature=1.0)
    a = torch.tensor([[[1.0, 0.0], [9.0, 9.0]]])
    p = torch.tensor([[[1.0, 0.0], [7.0, 7.0]]])
    n = torch.tensor([[[-1.0, 0.0], [100.0, 0.0]]])
    got, count = info_nce(a, torch.tensor([[True, False]]), p, torch.tensor([[True, False]]),
                          n, torch.tensor([[True, False]]), cfg, exclude_self=False)
    assert count == 1 and math.isclose(float(got), math.log(1 + math.exp(-2)), rel_tol=1e-6)


def test_one_query_per_video_is_drawn() -> None:
    torch.manual_seed(0)
    group = torch.tensor([5, 5, 5, 1, 1, 9])
    seen = set()
    for _ in range(40):
        rows = sample_query_per_video(group)
        assert sorted(group[rows].tolist()) == [1, 5, 9]
        seen.add(tuple(rows.tolist()))
    assert len(seen) > 1  # uniformly drawn, not always the first query


def _toy_output(t: int = 16) -> tuple[Output, Batch]:
    """Level 0 and two pyramid levels of one 16-clip video with features that encode position."""
    b = random_batch(1, t, 4, 5, 6, 20, duration=16.0)
    b.windows = torch.tensor([[4.0, 8.0]])
    feats = [torch.randn(1, t // s, 8) for s in (1, 1, 2)]
    masks = [torch.ones(1, t // s, dtype=torch.bool) for s in (1, 1, 2)]
    emb = {"clips": feats[0], "clip_mask": masks[0], "levels": feats[1:], "level_masks": masks[1:], "level_strides": [1, 2]}
    return Output(tensors={}, embeddings=emb), b


def test_positive_and_negative_sets_by_hand() -> None:
    torch.manual_seed(0)
    out, b = _toy_output()
    base, levels = build_samples(out, b, ContrastConfig(center_radius=1.5))
    # Window [4, 8] s of 16 one-second clips; clip j's centre is j + 0.5, the moment's centre 6.
    # Stride 1: |j + 0.5 - 6| < 1.5 and inside (4, 8) -> clips 5, 6.
    assert torch.nonzero(base.pos[0]).flatten().tolist() == [5, 6]
    assert torch.nonzero(levels[0].pos[0]).flatten().tolist() == [5, 6]
    # Stride 2: point j sits at 2j + 0.5; |2j + 0.5 - 6| < 3 and inside (4, 8) -> j = 2, 3.
    assert torch.nonzero(levels[1].pos[0]).flatten().tolist() == [2, 3]
    for lv, stride in zip([base] + levels, [1, 1, 2]):
        neg = torch.nonzero(lv.neg[0]).flatten()
        assert len(neg) == int(lv.pos.sum())  # |N(l)| = |P(l)|
        # Negatives lie outside the moment: clips 0-3, 8-15 at stride 1, points 0-1, 4-7 at stride 2.
        assert all(not (4 <= j * stride + 0.5 <= 8) for j in neg.tolist())


def test_samples_are_shared_between_the_two_objectives() -> None:
    out, b = _toy_output()
    cfg = ContrastConfig()
    first = build_samples(out, b, cfg)
    assert build_samples(out, b, cfg) is first


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_objectives_on_the_snag_pyramid_backpropagate(reduction: str) -> None:
    torch.manual_seed(0)
    cfg = SnagConfig(hidden_dim=32, text_hidden_dim=16, window=5, num_levels=4, text_layers=1, fusion_layers=1, head_layers=1)
    model = Snag(cfg, InputSpec(video_dim=12, text_dim=10, vocab_size=50, num_clips=None))
    b = random_batch(6, 40, 12, 7, 10, 50, variable_length=True, queries_per_video=3)
    out = model(b)
    ocfg = ContrastConfig(reduction=reduction)
    within = WithinScaleContrast(ocfg, model)(out, b)
    cross = CrossScaleContrast(ocfg, model)(out, b)
    for res in (within, cross):
        assert torch.isfinite(res["total"]) and float(res["total"].detach()) > 0 and float(res["pairs"]) > 0
    (within["total"] + cross["total"]).backward()
    grad = model.video_net.proj.conv.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_needs_windows() -> None:
    out, b = _toy_output()
    b.windows = None
    with pytest.raises(ValueError, match="windows"):
        CrossScaleContrast(ContrastConfig(), None)(out, b)  # type: ignore[arg-type]


def test_defaults_are_the_printed_equations() -> None:
    """Eqs. 11-12: raw dot products (no temperature), summed over every pair."""
    cfg = ContrastConfig()
    assert (cfg.similarity, cfg.temperature, cfg.reduction, cfg.shuffle_levels) == ("dot", 1.0, "sum", False)


def test_sum_is_the_mean_times_the_number_of_pairs() -> None:
    torch.manual_seed(0)
    out, b = _toy_output()
    results = {}
    for reduction in ("sum", "mean"):
        torch.manual_seed(1)  # the same draw of the query and the negatives for both
        fresh = Output(tensors={}, embeddings=out.embeddings)
        results[reduction] = WithinScaleContrast(ContrastConfig(reduction=reduction), None)(fresh, b)  # type: ignore[arg-type]
    pairs = float(results["mean"]["pairs"])
    assert pairs > 1 and float(results["sum"]["pairs"]) == pairs
    assert math.isclose(float(results["sum"]["total"]), float(results["mean"]["total"]) * pairs, rel_tol=1e-5)


def test_shuffled_strides_move_every_level() -> None:
    torch.manual_seed(0)
    strides = [1, 2, 4, 8]
    seen = set()
    for _ in range(30):
        got = shuffled_strides(strides)
        assert sorted(got) == strides and all(g != s for g, s in zip(got, strides))
        seen.add(tuple(got))
    assert len(seen) > 1


def test_shuffled_levels_control_misplaces_the_positives() -> None:
    torch.manual_seed(0)
    out, b = _toy_output()
    _, levels = build_samples(out, b, ContrastConfig(shuffle_levels=True))
    # Two pyramid levels (strides 1, 2) swap strides: level 1 (stride 1) is read as if its stride were 2,
    # so its positives are j = 2, 3 (not clips 5, 6), and level 2 (stride 2) as stride 1: j = 5, 6.
    assert torch.nonzero(levels[0].pos[0]).flatten().tolist() == [2, 3]
    assert torch.nonzero(levels[1].pos[0]).flatten().tolist() == [5, 6]
