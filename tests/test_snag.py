"""SnAG-style pyramid grounder: local attention, targets, focal / DIoU losses, configs, long videos, learning."""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path

import pytest
import torch
from _helpers import CONFIGS, val_r1

from momentloc.config import load_config
from momentloc.data.random_batch import random_batch
from momentloc.models.base import InputSpec, Output, first_row_per_video
from momentloc.models.build import WeightedObjectives, build_model
from momentloc.models.snag import Snag, SnagConfig
from momentloc.models.snag_layers import (
    ConvEncoderBlock,
    ConvLocalSelfAttention,
    diou_loss,
    local_attention,
    masked_max_pool,
    regression_ranges,
    score_voting,
    sigmoid_focal_loss,
)

SMALL = dict(
    hidden_dim=32, text_hidden_dim=16, num_heads=4, window=5, num_levels=4, text_layers=1, fusion_layers=1, head_layers=1
)


def _small(**kw) -> Snag:
    torch.manual_seed(0)
    return Snag(SnagConfig(**{**SMALL, **kw}), InputSpec(video_dim=12, text_dim=10, vocab_size=50, num_clips=None))


def _batch(t: int = 40, b: int = 6, q: int = 3, seed: int = 0):
    return random_batch(b, t, 12, 7, 10, 50, variable_length=True, queries_per_video=q, seed=seed)


# --------------------------------------------------------------------------- layers
@pytest.mark.parametrize("radius", [0, 1, 2, 3, 9])
def test_local_attention_equals_banded_dense_attention(radius: int) -> None:
    g = torch.Generator().manual_seed(radius)
    q, k, v = torch.randn(3, 2, 2, 23, 4, generator=g).unbind(0)
    mask = torch.arange(23)[None] < torch.tensor([23, 15])[:, None]
    out = local_attention(q, k, v, mask, radius)
    # Reference: the full T x T attention with a band mask (fine at T = 23).
    i = torch.arange(23)
    allowed = ((i[:, None] - i[None]).abs() <= radius)[None, None] & mask[:, None, None, :]
    scores = (q @ k.transpose(-1, -2) / 2.0).masked_fill(~allowed, float("-inf"))
    ref = scores.softmax(-1) @ v
    valid = mask[:, None, :, None].expand_as(out)
    assert torch.allclose(out[valid], ref[valid], atol=1e-5)


def test_masked_max_pool_by_hand() -> None:
    x = torch.tensor([[1.0, 5.0, 2.0, -3.0, 9.0]])[..., None]
    mask = torch.tensor([[True, True, True, True, False]])
    y, m = masked_max_pool(x, mask)
    # 3-step windows centred on steps 0, 2, 4: [pad, 1, 5], [5, 2, -3], [-3, 9 (padded), pad].
    assert m.tolist() == [[True, True, False]]
    assert y[0, :, 0].tolist() == [5.0, 5.0, 0.0]  # the padded 9 is never read; a padded output is zero


def test_release_attention_convolves_q_k_v_and_downsamples() -> None:
    torch.manual_seed(0)
    attn = ConvLocalSelfAttention(8, 2, 3, stride=2, dropout=0.0)
    assert all(c.conv.groups == 8 and c.conv.kernel_size == (3,) and c.stride == 2 for c in attn.convs)
    x = torch.randn(2, 11, 8)
    mask = torch.arange(11)[None] < torch.tensor([11, 6])[:, None]
    out, m = attn(x, mask)
    assert out.shape == (2, 6, 8) and m.sum(1).tolist() == [6, 3]
    # Padded input steps do not change the valid outputs.
    x2 = x.clone()
    x2[1, 6:] = 100.0
    assert torch.allclose(attn(x2, mask)[0], out, atol=1e-6)


def test_release_block_residual_is_a_max_pool_at_stride_two() -> None:
    torch.manual_seed(0)
    block = ConvEncoderBlock(8, 2, 3, stride=2, dropout=0.0, path_drop=0.0, ls_init=0.0)
    x = torch.randn(2, 9, 8)
    mask = torch.arange(9)[None] < torch.tensor([9, 5])[:, None]
    y, m = block(x, mask)
    ref, ref_mask = masked_max_pool(x, mask)
    assert torch.equal(m, ref_mask) and torch.allclose(y, ref * ref_mask[..., None])  # zero branches: the skip alone
    same = ConvEncoderBlock(8, 2, 3, stride=1, dropout=0.0, path_drop=0.0, ls_init=0.0)
    assert torch.allclose(same(x, mask)[0], x * mask[..., None])


@pytest.mark.parametrize("block", ["release", "linear"])
def test_encoder_blocks_give_the_same_pyramid_shapes(block: str) -> None:
    model = _small(encoder_block=block, stem_layers=1)
    out = model(_batch(t=37))
    assert [lv.shape[1] for lv in out.embeddings["levels"]] == [37, 19, 10, 5]
    assert [int(m[0].sum()) for m in out.embeddings["level_masks"]] == [math.ceil(int(out["num_clips"][0]) / 2**i)
                                                                          for i in range(4)]
    kinds = {type(m).__name__ for m in model.video_net.levels}
    assert kinds == ({"ConvEncoderBlock"} if block == "release" else {"EncoderBlock"})
    model.loss(out, _batch(t=37))["total"].backward()


def test_focal_loss_by_hand() -> None:
    logits = torch.tensor([0.0, 2.0, 0.0])
    targets = torch.tensor([1.0, 0.0, 0.9])
    got = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0)
    p2 = 1 / (1 + math.exp(-2.0))
    expected = [
        0.25 * 0.5**2 * math.log(2.0),  # p_t = 0.5, positive
        0.75 * p2**2 * math.log(1 + math.exp(2.0)),  # p_t = 1 - p, negative
        0.25 * 0.5**2 * math.log(2.0),  # soft target 0.9 at p = 0.5: CE = log 2, p_t = 0.5
    ]
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6)


def test_diou_loss_by_hand() -> None:
    # Point at 0: prediction [-1, 3], ground truth [-2, 2]. IoU = 3/5, enclosing 5, centre gap 1.
    got = diou_loss(torch.tensor([[1.0, 3.0], [2.0, 2.0]]), torch.tensor([[2.0, 2.0], [2.0, 2.0]]))
    assert torch.allclose(got, torch.tensor([1 - 0.6 + (1 / 5) ** 2, 0.0]), atol=1e-6)


def test_regression_ranges_double_and_overlap() -> None:
    assert regression_ranges(4, 4, 0.5) == [(0.0, 4.0), (2.0, 8.0), (4.0, 16.0), (8.0, math.inf)]


def test_score_voting_by_hand() -> None:
    kept = torch.tensor([[[0.0, 10.0]]])
    cands = torch.tensor([[[0.0, 10.0], [0.0, 10.2], [5.0, 15.0]]])
    scores = torch.tensor([[1.0, 0.5, 0.9]])
    got = score_voting(kept, cands, scores, torch.ones(1, 3, dtype=torch.bool), 0.95)
    assert torch.allclose(got, torch.tensor([[[0.0, (10.0 + 0.5 * 10.2) / 1.5]]]))


def test_first_row_per_video() -> None:
    first, inverse = first_row_per_video(torch.tensor([4, 4, 7, 2, 7]))
    assert first.tolist() == [3, 0, 2] and inverse.tolist() == [1, 1, 2, 0, 2]


def test_first_row_per_video_of_numbered_videos_needs_no_unique(monkeypatch) -> None:
    """With Batch.num_videos (videos numbered 0..V-1, as collate numbers them) no torch.unique runs: a GPU
    is not asked how many videos there are."""
    group = torch.tensor([1, 1, 2, 0, 2])
    want = first_row_per_video(group)
    monkeypatch.setattr(torch, "unique", lambda *a, **k: (_ for _ in ()).throw(AssertionError("unique called")))
    got = first_row_per_video(group, num_videos=3)
    assert [t.tolist() for t in got] == [t.tolist() for t in want] == [[3, 0, 2], [1, 1, 2, 0, 2]]
    b = _batch()
    assert b.num_videos == 2 and b.video_group.tolist() == [0, 0, 0, 1, 1, 1]
    model = _small().eval()
    with torch.no_grad():
        out = model(b)  # snag's forward encodes each video once, here without torch.unique
    assert out["logits"][0].shape[0] == b.size


# --------------------------------------------------------------------------- targets
def test_targets_centre_sampling_and_ranges_by_hand() -> None:
    model = _small(num_levels=3, regression_range=4, range_overlap=0.5, center_radius=1.5)
    b = random_batch(1, 16, 12, 5, 10, 50, seed=1, duration=16.0)
    b.windows = torch.tensor([[4.0, 8.0]])  # clip coordinates [3.5, 7.5], centre 5.5
    labels, offsets = model.targets(model(b), b)
    # Level 0 (stride 1, 16 points): inside (4, 7) -> points 5, 6 (half-extent 2.5 < 4).
    # Level 1 (stride 2, points at 0,2,..): inside (3.5, 7.5) -> positions 4, 6 (extent 3.5, 2.5 in [2, 8)).
    # Level 2 (stride 4): position 4 has extent 3.5 < 4: outside its range.
    assert torch.nonzero(labels[0]).flatten().tolist() == [5, 6, 16 + 2, 16 + 3]
    assert torch.allclose(offsets[0, 16 + 2], torch.tensor([0.5 / 2, 3.5 / 2]))


def test_embeddings_encode_each_video_once() -> None:
    model = _small().eval()
    b = _batch()
    out = model(b)
    emb = out.embeddings
    assert emb["clips"].shape == (6, 40, 32) and emb["sentence"].shape == (6, 16)
    assert [lv.shape[1] for lv in emb["levels"]] == [40, 20, 10, 5]
    assert emb["level_strides"] == [1, 2, 4, 8]
    assert torch.equal(emb["levels"][2][0], emb["levels"][2][2])  # same video, same pyramid
    assert emb["words"].shape == (6, 7, 16) and emb["word_mask"].shape == (6, 7)
    # Padded steps of every level stay zero.
    for lv, m in zip(emb["levels"], emb["level_masks"]):
        assert float(lv.detach()[~m].abs().sum()) == 0.0


def test_loss_decode_and_state_dict_round_trip() -> None:
    model = _small()
    b = _batch()
    losses = model.loss(model(b), b)
    assert set(losses) >= {"total", "cls", "reg"} and torch.isfinite(losses["total"])
    losses["total"].backward()
    model.eval()
    moments = model.decode(model(b), b, k=5)
    for ms, dur in zip(moments, b.duration.tolist()):
        assert 1 <= len(ms) <= 5
        assert all(0 <= m.start <= m.end <= dur for m in ms)
        assert all(x.score >= y.score for x, y in zip(ms, ms[1:]))
    clone = _small()
    clone.load_state_dict(model.state_dict())
    clone.eval()
    with torch.no_grad():
        a, c = model(b), clone(b)
    for x, y in zip(a["logits"] + a["offsets"], c["logits"] + c["offsets"]):
        assert torch.equal(x, y)


def test_text_input_norm_option_runs() -> None:
    model = _small(text_input_norm=True, fusion_mode="adaln", stem_layers=1)
    b = _batch()
    model.loss(model(b), b)["total"].backward()
    assert model.text_net.in_norm.weight.grad is not None


def test_loss_needs_windows() -> None:
    model = _small()
    b = random_batch(2, 16, 12, 5, 10, 50, supervision="weak")
    with pytest.raises(ValueError, match="windows"):
        model.loss(model(b), b)


def test_twenty_thousand_clip_video_on_cpu() -> None:
    torch.manual_seed(0)
    cfg = SnagConfig(hidden_dim=32, text_hidden_dim=32, num_heads=4, window=9, num_levels=8, text_layers=1,
                     fusion_layers=1, head_layers=1, embed_convs=1)
    model = Snag(cfg, InputSpec(video_dim=64, text_dim=32, vocab_size=50, num_clips=None)).eval()
    b = random_batch(1, 20_000, 64, 8, 32, 50, duration=40_000.0)
    start = time.perf_counter()
    with torch.no_grad():
        out = model(b)
        moments = model.decode(out, b, k=5)
    seconds = time.perf_counter() - start
    assert [lv.shape[1] for lv in out.embeddings["levels"]] == [20_000 // 2**i + (20_000 % 2**i > 0) for i in range(8)]
    assert len(moments[0]) >= 1 and all(0 <= m.start <= m.end <= 40_000.0 for m in moments[0])
    assert seconds < 60, f"20k-clip inference took {seconds:.1f} s"


# --------------------------------------------------------------------------- paper configs
PAPER = [
    ("snag_charades_sta", 256),
    ("snag_tacos", 300),  # variable length: a short stand-in for TACoS's long videos
    ("snag_activitynet", 256),
    ("snag_msc_charades_sta", 256),
    ("snag_msc_tacos", 300),
    ("snag_msc_activitynet", 256),
]


@pytest.mark.parametrize("name,num_clips", PAPER)
def test_paper_config_trains_one_step(name: str, num_clips: int) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.model.name == "snag"
    spec = InputSpec(video_dim=cfg.data.feature_dim, text_dim=300, vocab_size=100, num_clips=cfg.data.num_clips)
    torch.manual_seed(0)
    model = build_model(cfg, spec)
    objectives = WeightedObjectives(cfg, model)
    assert len(objectives.names) == (2 if "_msc_" in name else 0)
    b = random_batch(4, num_clips, cfg.data.feature_dim, 10, 300, 100, variable_length=cfg.data.num_clips is None,
                     queries_per_video=2, duration=60.0)
    params = list(model.parameters()) + list(objectives.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    before = [p.detach().clone() for p in model.parameters()]
    out: Output = model(b)
    total = objectives(out, b, model.loss(out, b)["total"])["total"]
    opt.zero_grad()
    total.backward()
    opt.step()
    assert torch.isfinite(total)
    assert any(not torch.equal(p, q) for p, q in zip(before, model.parameters()))
    model.eval()
    with torch.no_grad():
        moments = model.decode(model(b), b, k=5)
    assert all(1 <= len(ms) <= 5 and all(0 <= m.start <= m.end <= 60.0 for m in ms) for ms in moments)


def test_ci_config_uses_the_release_block_per_step_schedule_and_decay_exemptions() -> None:
    from momentloc.optim import make_optimizer, schedule_factor

    cfg = load_config(CONFIGS / "snag_synthetic_ci.yaml")
    assert cfg.model.params["encoder_block"] == "release"
    o = cfg.optim
    assert o.schedule_interval == "step" and o.scheduler == "warmup_cosine" and o.no_decay
    f = schedule_factor(o, epochs=cfg.train.epochs, steps_per_epoch=10)
    warm = int(o.warmup_epochs * 10)
    ramp = [f(i) for i in range(warm)]
    assert all(a < b for a, b in zip(ramp, ramp[1:])) and ramp[-1] < 1  # rises every step of the warm-up
    assert f(warm) == 1.0 and f(cfg.train.epochs * 10) == pytest.approx(0.0, abs=1e-9)
    decay = [f(i) for i in range(warm, cfg.train.epochs * 10)]
    assert all(a > b for a, b in zip(decay, decay[1:]))  # a cosine that moves every step
    model = _small()
    named = [(f"model.{n}", p) for n, p in model.named_parameters()]
    made = make_optimizer(o, named, cfg.train.epochs, steps_per_epoch=10)
    assert made["lr_scheduler"]["interval"] == "step"
    exempt = {id(p) for g in made["optimizer"].param_groups if g["weight_decay"] == 0 for p in g["params"]}
    by_name = dict(named)
    for name in ("model.text_net.background", "model.reg_scales", "model.fusion_norm.weight",
                 "model.video_net.levels.1.ls_attn.scale", "model.video_net.levels.1.attn.q.bias"):
        assert id(by_name[name]) in exempt, name
    assert id(by_name["model.video_net.levels.1.attn.q.weight"]) not in exempt


# --------------------------------------------------------------------------- learning
HAVE_TRAINING = all(importlib.util.find_spec(m) for m in ("momentloc.training", "momentloc.data.synthetic"))


@pytest.mark.skipif(not HAVE_TRAINING, reason="needs momentloc.training and the synthetic benchmark")
def test_learns_synthetic_ci_twice_the_prior(ci_synth, tmp_path: Path) -> None:
    prior, snag = (val_r1(c, ci_synth, tmp_path) for c in ("prior_synthetic_ci", "snag_synthetic_ci"))
    assert snag >= 2 * prior, f"SnAG R1@0.5 {snag:.1f} vs prior {prior:.1f}"


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TRAINING, reason="needs momentloc.training and the synthetic benchmark")
def test_contrastive_variant_learns_synthetic_ci_twice_the_prior(ci_synth, tmp_path: Path) -> None:
    prior, msc = (val_r1(c, ci_synth, tmp_path) for c in ("prior_synthetic_ci", "snag_msc_synthetic_ci"))
    assert msc >= 2 * prior, f"SnAG + contrast R1@0.5 {msc:.1f} vs prior {prior:.1f}"


def test_loss_without_boolean_indexing_equals_the_indexed_form() -> None:
    """Masked sums (no device sync) give the loss and gradients of selecting the valid / positive points."""
    model = _small().double()
    b = _batch()
    b.video, b.words = b.video.double(), b.words.double()
    out = model(b)
    new = model.loss(out, b)["total"]
    params = [p for p in model.parameters() if p.requires_grad]
    g_new = torch.autograd.grad(new, params, retain_graph=True, allow_unused=True)
    c = model.cfg
    labels, gt = model.targets(out, b)
    logits, offsets = torch.cat(out["logits"], 1), torch.cat(out["offsets"], 1)
    valid = torch.cat(out["masks"], 1)
    positive = labels & valid
    assert 0 < int(positive.sum()) and not bool(valid.all())  # both masks matter here
    soft = labels[valid].to(logits.dtype) * (1 - c.label_smoothing) + c.label_smoothing / 2
    cls = sigmoid_focal_loss(logits[valid], soft, c.focal_alpha, c.focal_gamma).sum() / model.loss_norm
    reg = diou_loss(offsets[positive], gt[positive].to(offsets.dtype)).sum() / model.loss_norm
    old = cls + c.reg_weight * reg
    torch.testing.assert_close(new, old, rtol=1e-12, atol=1e-12)
    for a, g in zip(g_new, torch.autograd.grad(old, params, allow_unused=True)):
        if a is not None:
            torch.testing.assert_close(a, g, rtol=1e-10, atol=1e-12)
