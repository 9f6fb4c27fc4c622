"""2D-TAN: candidate sampling, moment map, masked adjacent network, scaled-IoU labels, configs, learning."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _helpers import CONFIGS, val_r1

from momentloc.config import load_config
from momentloc.data.random_batch import random_batch
from momentloc.models.base import InputSpec
from momentloc.models.build import WeightedObjectives, build_model
from momentloc.models.tan2d import Tan2d, Tan2dConfig
from momentloc.models.tan2d_layers import (
    MaskedMapConv,
    MomentMap,
    cell_iou,
    masked_bce,
    resample_clips,
    scaled_iou_targets,
    sparse_candidate_mask,
    triangle_tile,
    upper_tile_conv,
)
from momentloc.types import Moment


def paper_rule(a: int, b: int) -> bool:
    """G(a, b) of the 2D-TAN paper, written out for one cell."""
    if b < a:
        return False
    k = math.ceil(math.log2((b - a + 1) / 8))
    if k <= 1:  # s = 1: every short moment is a candidate
        return True
    s, s_prime = 2 ** (k - 1), 2 ** (k + 2) - 1
    return a % s == 0 and (b - s_prime) % s == 0


@pytest.mark.parametrize("n", [16, 64, 128])
def test_sparse_mask_follows_the_paper_rule(n: int) -> None:
    expected = torch.tensor([[paper_rule(a, b) for b in range(n)] for a in range(n)])
    assert torch.equal(sparse_candidate_mask(n), expected)
    # The hierarchical map visits exactly the cells the rule keeps.
    assert torch.equal(MomentMap(n, 4).mask, expected)


def test_sparse_mask_n16_dense_n64_sparse_by_hand() -> None:
    assert torch.equal(sparse_candidate_mask(16), torch.ones(16, 16, dtype=torch.bool).triu())
    m = sparse_candidate_mask(64)
    # Spans 1..16 are dense; 17..32 need an even start and an odd end; 33..64 start % 4 == 0, end % 4 == 3.
    assert m[5, 20] and m[63, 63] and m[48, 63]  # spans 16, 1, 16
    assert not m[0, 16] and m[0, 17] and not m[1, 18] and m[2, 19] and not m[2, 20]
    assert m[0, 35] and m[4, 39] and not m[2, 37] and not m[0, 36] and m[0, 63]
    assert not m[10, 5]  # lower triangle
    # Counts: 16 dense diagonals, then 8 diagonals at stride 2 and 8 at stride 4.
    dense = sum(64 - d for d in range(16))
    stride2 = sum(len(range(0, 64 - (17 + 2 * i), 2)) for i in range(8))
    stride4 = sum(len(range(0, 64 - (35 + 4 * i), 4)) for i in range(8))
    assert int(m.sum()) == dense + stride2 + stride4 == 1104


def test_pool_map_cell_is_max_over_its_clips() -> None:
    x = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(0))
    mm = MomentMap(64, 3, "pool")
    out = mm(x)
    for a, b in [(0, 0), (3, 10), (0, 17), (2, 19), (4, 39), (0, 63)]:
        assert mm.mask[a, b]
        assert torch.allclose(out[:, :, a, b], x[:, :, a : b + 1].max(-1).values)
    assert out[:, :, ~mm.mask].abs().sum() == 0


def test_conv_map_fills_only_candidates_and_learns() -> None:
    mm = MomentMap(32, 4, "conv")
    x = torch.randn(2, 4, 32, requires_grad=True)
    out = mm(x)
    assert out[:, :, ~mm.mask].abs().sum() == 0
    out.sum().backward()
    assert all(p.grad is not None for p in mm.parameters())


def test_masked_tan_ignores_invalid_cells() -> None:
    torch.manual_seed(0)
    tan = MaskedMapConv(4, 5, 3)
    mask = sparse_candidate_mask(32)
    clean = torch.randn(1, 4, 32, 32) * mask
    dirty = clean + torch.randn(1, 4, 32, 32) * 100 * ~mask
    a, b = tan(clean, mask), tan(dirty, mask)
    assert torch.allclose(a, b)
    assert a[:, :, ~torch.ones(32, 32, dtype=torch.bool).triu()].abs().sum() == 0  # never below the diagonal


def test_resample_clips_by_hand() -> None:
    video = torch.arange(6.0).view(1, 6, 1)
    full = torch.ones(1, 6, dtype=torch.bool)
    assert torch.allclose(resample_clips(video, full, 3).flatten(), torch.tensor([0.5, 2.5, 4.5]))
    prefix = torch.tensor([[True] * 4 + [False] * 2])
    assert torch.allclose(resample_clips(video, prefix, 2).flatten(), torch.tensor([0.5, 2.5]))
    # Bins of 4/3 clips: (0 + 1/3) / (4/3), (2/3 * 1 + 2/3 * 2) / (4/3), (1/3 * 2 + 3) / (4/3).
    assert torch.allclose(resample_clips(video, prefix, 3).flatten(), torch.tensor([0.25, 1.5, 2.75]))


def test_scaled_iou_labels_by_hand() -> None:
    # N = 4 cells of a quarter each; ground truth [0.25, 0.75] of the video.
    win = torch.tensor([[0.25, 0.75]])
    iou = cell_iou(win, 4)[0]
    assert iou[1, 2] == pytest.approx(1.0) and iou[1, 1] == pytest.approx(0.5)
    assert iou[0, 2] == pytest.approx(0.5 / 0.75) and iou[0, 3] == pytest.approx(0.5)
    y = scaled_iou_targets(win, 4, 0.5, 1.0)[0]  # Charades / ActivityNet
    assert y[1, 2] == pytest.approx(1.0) and y[1, 1] == pytest.approx(0.0) and y[0, 3] == pytest.approx(0.0)
    assert y[0, 2] == pytest.approx((2 / 3 - 0.5) / 0.5) and y[1, 3] == pytest.approx(1 / 3)
    y = scaled_iou_targets(win, 4, 0.3, 0.7)[0]  # TACoS
    assert y[1, 1] == pytest.approx((0.5 - 0.3) / 0.4, abs=1e-6) and y[1, 2] == pytest.approx(1.0)
    assert y[0, 2] == pytest.approx((2 / 3 - 0.3) / 0.4, abs=1e-6) and y[3, 3] == pytest.approx(0.0)  # IoU 0


def test_masked_bce_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, -2.0]])
    targets = torch.tensor([[0.5, 1.0], [0.0, 0.3]])
    mask = torch.tensor([[True, True], [False, False]])
    # sigmoid(0) = 1/2 against 1/2 -> ln 2; sigmoid(ln 3) = 3/4 against 1 -> -ln(3/4); mean of the two.
    expected = (math.log(2.0) - math.log(0.75)) / 2
    assert float(masked_bce(logits, targets, mask)) == pytest.approx(expected, rel=1e-6)


def _small_model(**over) -> Tan2d:
    cfg = Tan2dConfig(**{"map_size": 16, "hidden_size": 16, "num_layers": 2, "lstm_layers": 1, **over})
    torch.manual_seed(0)
    return Tan2d(cfg, InputSpec(video_dim=8, text_dim=6, vocab_size=20, num_clips=None))


def test_forward_exposes_embeddings_and_score_map() -> None:
    model = _small_model()
    batch = random_batch(3, 25, 8, num_words=5, text_dim=6, vocab_size=20, variable_length=True)
    out = model(batch)
    assert out["score_map"].shape == (3, 16, 16)
    assert out["score_map"][:, ~model.candidate_mask].abs().sum() == 0
    emb = out.embeddings
    assert emb["clips"].shape == (3, 16, 16) and emb["clip_mask"].all()
    assert emb["sentence"].shape == (3, 16) and emb["words"].shape == (3, 5, 16)
    assert torch.equal(emb["word_mask"], batch.word_mask)


def test_decode_gives_valid_nms_moments() -> None:
    model = _small_model()
    batch = random_batch(2, 16, 8, num_words=5, text_dim=6, vocab_size=20, duration=40.0)
    out = model(batch)
    for moments in model.decode(out, batch, k=5):
        assert len(moments) == 5
        assert all(isinstance(m, Moment) and 0.0 <= m.start < m.end <= 40.0 for m in moments)
        assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
        for i, m in enumerate(moments):  # no kept pair overlaps above the NMS threshold
            for o in moments[:i]:
                inter = max(0.0, min(m.end, o.end) - max(m.start, o.start))
                assert inter / (max(m.end, o.end) - min(m.start, o.start)) <= 0.5 + 1e-6


def test_loss_needs_windows_and_state_dict_round_trip() -> None:
    model = _small_model(map_variant="conv")
    batch = random_batch(2, 16, 8, num_words=5, text_dim=6, vocab_size=20)
    assert model.supervision == "full"
    loss = model.loss(model(batch), batch)["total"]
    assert torch.isfinite(loss)
    weak = random_batch(2, 16, 8, num_words=5, text_dim=6, vocab_size=20, supervision="weak")
    with pytest.raises(ValueError, match="windows"):
        model.loss(model(weak), weak)
    other = _small_model(map_variant="conv")
    torch.nn.init.zeros_(other.score.weight)
    other.load_state_dict(model.state_dict())
    model.eval(), other.eval()
    assert torch.equal(model(batch)["score_map"], other(batch)["score_map"])


PAPER = [  # config, feature dim, N, kernel, layers, t_min, t_max
    ("tan2d_charades_sta", 1024, 16, 5, 8, 0.5, 1.0),
    ("tan2d_tacos", 4096, 128, 5, 8, 0.3, 0.7),
    ("tan2d_activitynet", 500, 64, 9, 4, 0.5, 1.0),
    ("tan2d_sscs_charades_sta", 1024, 16, 5, 8, 0.5, 1.0),
    ("tan2d_sscs_tacos", 4096, 128, 5, 8, 0.3, 0.7),
    ("tan2d_sscs_activitynet", 500, 64, 9, 4, 0.5, 1.0),
]


def _one_step(name: str, hidden: int | None) -> None:
    """Build a paper config (optionally narrower), run forward + loss + backward + Adam step + decode."""
    over = [f"model.params.hidden_size={hidden}"] if hidden else []
    cfg = load_config(CONFIGS / f"{name}.yaml", over)
    torch.manual_seed(0)
    dim, n = cfg.data.feature_dim, cfg.model.params["map_size"]
    model = build_model(cfg, InputSpec(video_dim=dim, text_dim=300, vocab_size=50, num_clips=cfg.data.num_clips))
    objectives = WeightedObjectives(cfg, model)
    params = list(model.parameters()) + list(objectives.parameters())
    opt = torch.optim.Adam(params, lr=1e-4)
    batch = random_batch(2, cfg.data.num_clips or n, dim, num_words=8, text_dim=300, vocab_size=50)
    out = model(batch)
    total = objectives(out, batch, model.loss(out, batch)["total"])["total"]
    before = [q.detach().clone() for q in params]
    opt.zero_grad()
    total.backward()
    opt.step()
    assert torch.isfinite(total)
    assert any(not torch.equal(a, q) for a, q in zip(before, params))
    model.eval()
    with torch.no_grad():
        moments = model.decode(model(batch), batch, k=5)
    assert all(len(ms) == 5 and all(0 <= m.start < m.end <= 30.0 for m in ms) for ms in moments)


@pytest.mark.parametrize("name,dim,n,kernel,layers,t_min,t_max", PAPER)
def test_paper_config_trains_one_step(name, dim, n, kernel, layers, t_min, t_max) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    p = cfg.model.params
    assert cfg.model.name == "tan2d" and p["hidden_size"] == 512 and p["lstm_layers"] == 3
    assert (cfg.data.feature_dim, p["map_size"], p["kernel_size"], p["num_layers"]) == (dim, n, kernel, layers)
    assert (p["t_min"], p["t_max"], p["nms_threshold"]) == (t_min, t_max, 0.5)
    assert [o.name for o in cfg.objectives] == (["sscs"] if "sscs" in name else [])
    # The paper's input shapes (feature dim, 256 sampled clips, N) with a narrow network: a CPU step in seconds.
    _one_step(name, hidden=16)


@pytest.mark.slow
@pytest.mark.parametrize("name", [row[0] for row in PAPER])
def test_paper_config_full_width_step(name: str) -> None:
    _one_step(name, hidden=None)


HAVE_TRAINING = all(importlib.util.find_spec(m) for m in ("momentloc.training", "momentloc.data.synthetic"))


@pytest.mark.skipif(not HAVE_TRAINING, reason="needs momentloc.training and the synthetic benchmark")
def test_learns_synthetic_ci_twice_the_prior(ci_synth, tmp_path: Path) -> None:
    prior, tan = (val_r1(c, ci_synth, tmp_path) for c in ("prior_synthetic_ci", "tan2d_synthetic_ci"))
    assert tan >= 2 * prior, f"2D-TAN R1@0.5 {tan:.1f} vs prior {prior:.1f}"


@pytest.mark.parametrize("n,kernel", [(64, 9), (128, 5)])
def test_tiled_convolution_equals_the_full_one_on_the_upper_triangle(n: int, kernel: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, n, n, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, kernel, kernel, dtype=torch.float64, requires_grad=True)
    tile = triangle_tile(n)
    assert tile is not None and n % tile == 0
    upper = torch.ones(n, n, dtype=torch.bool).triu()
    full = F.conv2d(x, w, padding=kernel // 2)
    tiled = upper_tile_conv(x, w, kernel // 2, tile)
    assert torch.allclose(full[..., upper], tiled[..., upper], atol=1e-10)
    # Tiles wholly below the diagonal are not computed.
    assert float(tiled[..., n - tile :, :tile].abs().max()) == 0.0
    weight = torch.rand(n, n, dtype=torch.float64) * upper
    g_full = torch.autograd.grad((full * weight).sum(), (x, w))
    g_tiled = torch.autograd.grad((tiled * weight).sum(), (x, w))
    for a, b in zip(g_full, g_tiled):
        assert torch.allclose(a, b, atol=1e-8)


def test_small_maps_are_convolved_whole() -> None:
    assert triangle_tile(16) is None and triangle_tile(32) is None and triangle_tile(64) == 8


def test_banded_convolution_keeps_only_its_input_and_weight_for_backward() -> None:
    """Autograd's own ops would also keep every band's padded copy (about 0.6 of a map per layer)."""
    x = torch.randn(2, 4, 64, 64, requires_grad=True)
    w = torch.randn(3, 4, 5, 5, requires_grad=True)
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = upper_tile_conv(x, w, 2, triangle_tile(64))
    assert sum(saved) == x.numel() * 4 + w.numel() * 4
    y.sum().backward()
    assert x.grad is not None and w.grad is not None


def test_banded_convolution_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    n, kernel = 64, 5
    x = torch.randn(2, 4, n, n, requires_grad=True)
    w = torch.randn(3, 4, kernel, kernel, requires_grad=True)
    upper = torch.ones(n, n, dtype=torch.bool).triu()
    weight = torch.rand(n, n) * upper
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tiled = upper_tile_conv(x, w, kernel // 2, triangle_tile(n))
        full = F.conv2d(x, w, padding=kernel // 2)
    assert tiled.dtype == full.dtype == torch.bfloat16
    torch.testing.assert_close(tiled[..., upper], full[..., upper], rtol=1e-2, atol=1e-2)
    g_tiled = torch.autograd.grad((tiled.float() * weight).sum(), (x, w))
    g_full = torch.autograd.grad((full.float() * weight).sum(), (x, w))
    for a, b in zip(g_tiled, g_full):
        assert a.dtype == torch.float32  # gradients in the inputs' dtype
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2 * float(b.abs().max()))


def test_fusion_on_the_candidate_cells_equals_the_masked_full_map() -> None:
    """The map projection and fusion run on the candidate cells only; 2D-TAN's form (1x1 conv over the whole
    map, fuse, normalise, mask) gives the same input to the convolutions."""
    cfg = load_config(CONFIGS / "tan2d_tacos.yaml", ["model.params.hidden_size=16"])
    torch.manual_seed(0)
    model = build_model(cfg, InputSpec(video_dim=cfg.data.feature_dim, text_dim=300, vocab_size=50,
                                       num_clips=cfg.data.num_clips)).double()
    mask = model.candidate_mask
    assert 0 < mask.sum() < mask.numel() / 4  # TACoS's map is sparse: the saving is real
    video = torch.randn(2, cfg.data.num_clips, cfg.data.feature_dim, dtype=torch.float64)
    text = torch.randn(2, 16, dtype=torch.float64)
    clips, cells = model.encode_video(video, torch.ones(video.shape[:2], dtype=torch.bool))
    sparse = model.moment_map.scatter(F.normalize(cells * text[:, None, :], dim=-1).transpose(1, 2))
    full_map = model.map_proj(model.moment_map(clips.transpose(1, 2)))
    full = F.normalize(full_map * text[:, :, None, None], dim=1) * mask
    torch.testing.assert_close(sparse, full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [16, 64])
def test_the_map_keeps_the_gpu_layout_through_every_layer(n: int, monkeypatch) -> None:
    """On a GPU the map stays NHWC from the first convolution to the last (an NCHW operand costs cuDNN a
    transpose per convolution); forced here on the CPU, the values and gradients equal the default layout's."""
    from momentloc.models import tan2d_layers

    torch.manual_seed(0)
    net = MaskedMapConv(6, 5, 3).double()
    mask = sparse_candidate_mask(n)
    x = torch.randn(2, 6, n, n, dtype=torch.float64) * mask
    weight = torch.rand(2, 6, n, n, dtype=torch.float64)

    def run() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        xi = x.clone().requires_grad_(True)
        out = net(xi, mask)
        return out, torch.autograd.grad((out * weight).sum(), (xi, *net.parameters()))

    out_default, grads_default = run()
    layouts: list[bool] = []
    conv2d = F.conv2d

    def spy(inp, weight, *args, **kwargs):  # type: ignore[no-untyped-def]
        if inp.shape[1] > 1:  # the map, not the one-channel mask count
            layouts.append(inp.is_contiguous(memory_format=torch.channels_last))
        return conv2d(inp, weight, *args, **kwargs)

    monkeypatch.setattr(tan2d_layers, "map_memory_format", lambda t: torch.channels_last)
    monkeypatch.setattr(tan2d_layers.F, "conv2d", spy)
    out_nhwc, grads_nhwc = run()
    assert layouts and all(layouts)
    assert out_nhwc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_nhwc, out_default, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_nhwc, grads_default):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
