"""SG-SCI: Gaussian targets, window soft labels, GCA and the three SCL losses against hand-computed
values; every paper config trains one step; save/reload; the Table 3 switches."""

import math

import pytest
import torch
from _helpers import (
    CONFIGS,
    assert_round_trip,
    check_decode,
    config_model_and_batch,
    metrics_on_test,
    training_step,
)

from momentloc.config import load_config
from momentloc.data.random_batch import random_batch
from momentloc.models.base import InputSpec, Output
from momentloc.models.point_layers import (
    gaussian_weights,
    glance_index,
    granularity_alignment,
    log_gaussian,
)
from momentloc.models.sg_sci import (
    SgSciConfig,
    SgSciModel,
    scale_losses,
    unit_scale_losses,
    window_grid,
    window_soft_labels,
)
from momentloc.registry import get_model_class


def _g(i: int, tau: int, n: int, sigma: float) -> float:
    """Eq. (5) written out."""
    x = (i - tau) * 2 / (n - 1)
    return math.exp(-x * x / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)


def test_registered_as_point_model():
    assert get_model_class("sg_sci") is SgSciModel
    assert SgSciModel.supervision == "point"


def test_glance_index_follows_the_clip_convention():
    point = torch.tensor([7.5, 30.0, 0.0, 14.99])
    duration = torch.tensor([30.0, 30.0, 30.0, 30.0])
    lengths = torch.tensor([10, 10, 10, 4])
    # 7.5 s of 30 s in 10 clips is clip 2; the very end belongs to the last clip.
    assert glance_index(point, duration, lengths).tolist() == [2, 9, 0, 1]


def test_gaussian_matches_eq5():
    g = gaussian_weights(torch.tensor([2]), torch.tensor([5]), 5, 0.5)
    # x = (i - 2) * 2 / 4 = [-1, -.5, 0, .5, 1]; G = exp(-2 x^2) / (0.5 sqrt(2 pi))
    c = 1 / (0.5 * math.sqrt(2 * math.pi))
    expected = [c * math.exp(-2.0), c * math.exp(-0.5), c, c * math.exp(-0.5), c * math.exp(-2.0)]
    torch.testing.assert_close(g[0], torch.tensor(expected))
    assert abs(expected[2] - 0.797885) < 1e-6


def test_gaussian_uses_the_valid_length_and_zeroes_padding():
    g = gaussian_weights(torch.tensor([1]), torch.tensor([4]), 6, 0.5)
    expected = [_g(i, 1, 4, 0.5) for i in range(4)] + [0.0, 0.0]
    torch.testing.assert_close(g[0], torch.tensor(expected))


def test_window_grid_covers_each_video_once():
    starts, ends, valid = window_grid(torch.tensor([10, 7]), 10, 4, 2)
    assert starts.tolist() == [0, 2, 4, 6, 8]
    assert ends.tolist() == [[3, 5, 7, 9, 9], [3, 5, 6, 6, 6]]
    # 10 clips: windows [0,3] [2,5] [4,7] [6,9]; 7 clips: [0,3] [2,5] [4,6] (the cut one reaches the end).
    assert valid.tolist() == [[True, True, True, True, False], [True, True, True, False, False]]


def test_window_soft_labels_eq12_13():
    n, tau, sigma = 10, 3, 0.5
    starts, ends, valid = window_grid(torch.tensor([n]), n, 4, 2)
    log_g = log_gaussian(torch.tensor([tau]), torch.tensor([n]), n, sigma)
    soft = window_soft_labels(torch.tensor([tau]), starts, ends, valid, log_g, soft=True)
    # Windows holding clip 3: [0,3] and [2,5]; W = G(start) * G(end).
    w = [_g(0, tau, n, sigma) * _g(3, tau, n, sigma), _g(2, tau, n, sigma) * _g(5, tau, n, sigma)]
    expected = torch.tensor([w[0] / sum(w), w[1] / sum(w), 0.0, 0.0, 0.0])
    torch.testing.assert_close(soft[0], expected)
    hard = window_soft_labels(torch.tensor([tau]), starts, ends, valid, log_g, soft=False)
    torch.testing.assert_close(hard[0], torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0]))


def test_soft_labels_survive_narrow_gaussians():
    # sigma 0.04 on a long window would underflow G(s) G(e) in float32 without log space.
    n = 40
    starts, ends, valid = window_grid(torch.tensor([n]), n, 32, 16)
    log_g = log_gaussian(torch.tensor([20]), torch.tensor([n]), n, 0.04)
    soft = window_soft_labels(torch.tensor([20]), starts, ends, valid, log_g)
    assert torch.isfinite(soft).all() and abs(float(soft.sum()) - 1.0) < 1e-5


def test_three_losses_by_hand():
    # 4 clips, windows [0,1] and [2,3] (size 2, stride 2), glance in clip 1, sentence along x.
    clips = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.5, -1.0], [-1.0, 0.0]]])
    sentence = torch.tensor([[1.0, 0.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    sim = torch.nn.functional.cosine_similarity(clips, sentence[:, None], dim=-1)
    s2 = 0.5 / math.sqrt(1.25)
    torch.testing.assert_close(sim[0], torch.tensor([1.0, 0.0, s2, -1.0]))
    cfg = SgSciConfig(window_size=2, window_stride=2, sigma=1.0, temperature=0.5)
    tau = torch.tensor([1])
    log_g = log_gaussian(tau, torch.tensor([4]), 4, cfg.sigma)
    out = scale_losses(sim, clips, sentence, mask, tau, log_g, cfg)

    # Eq. (11): -sum_i G_i log softmax(S / t)_i with G normalised over the clips.
    g = [math.exp(-((i - 1) * 2 / 3) ** 2 / 2) for i in range(4)]
    g = [v / sum(g) for v in g]
    logits = [2.0, 0.0, s2 / 0.5, -2.0]
    lse = math.log(sum(math.exp(v) for v in logits))
    expected_global = -sum(gi * (li - lse) for gi, li in zip(g, logits))
    assert abs(float(out["global"]) - expected_global) < 1e-5

    # Only window 0 holds the glance, so the soft label is one-hot and KL = -log p_0.
    # F-M (Eq. 14): window features are max-pools: [1, 1] (cos 1/sqrt 2) and [0.5, 0] (cos 1).
    fm = math.log(1 + math.exp((1.0 - 1 / math.sqrt(2)) / 0.5))
    assert abs(float(out["fm"]) - fm) < 1e-5
    # M-F (Eqs. 15-16): each window's best clip: S = 1 in window 0, S = s2 in window 1.
    mf = math.log(1 + math.exp((s2 - 1.0) / 0.5))
    assert abs(float(out["mf"]) - mf) < 1e-5


def test_kl_with_two_positive_windows_by_hand():
    clips = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [0.5, -1.0], [1.0, -1.0]]])
    sentence = torch.tensor([[1.0, 1.0]])
    mask = torch.ones(1, 6, dtype=torch.bool)
    sim = torch.nn.functional.cosine_similarity(clips, sentence[:, None], dim=-1)
    cfg = SgSciConfig(window_size=3, window_stride=1, sigma=0.5, temperature=1.0, pooling="mean")
    tau = torch.tensor([2])
    log_g = log_gaussian(tau, torch.tensor([6]), 6, cfg.sigma)
    out = scale_losses(sim, clips, sentence, mask, tau, log_g, cfg)
    # Windows [0,2], [1,3], [2,4], [3,5]; the first three hold clip 2.
    w = [_g(s, 2, 6, 0.5) * _g(s + 2, 2, 6, 0.5) for s in range(3)]
    y = [v / sum(w) for v in w] + [0.0]
    r = 1 / math.sqrt(2)
    cos = lambda a, b: (a[0] * b[0] + a[1] * b[1]) / math.hypot(*a) / math.hypot(*b)
    means = [[sum(c[0] for c in clips[0, s : s + 3].tolist()) / 3, sum(c[1] for c in clips[0, s : s + 3].tolist()) / 3] for s in range(4)]
    scores = [cos(m, (1.0, 1.0)) for m in means]
    lse = math.log(sum(math.exp(v) for v in scores))
    fm = sum(yi * (math.log(yi) - (si - lse)) for yi, si in zip(y, scores) if yi > 0)
    assert abs(float(out["fm"]) - fm) < 1e-5
    s = [cos(c, (1.0, 1.0)) for c in clips[0].tolist()]
    assert abs(s[0] - r) < 1e-12 and s[2] == pytest.approx(1.0) and s[5] == 0.0
    keys = [max(s[i : i + 3]) for i in range(4)]
    lse = math.log(sum(math.exp(v) for v in keys))
    mf = sum(yi * (math.log(yi) - (ki - lse)) for yi, ki in zip(y, keys) if yi > 0)
    assert abs(float(out["mf"]) - mf) < 1e-5


def test_release_window_losses_on_unit_features_by_hand():
    # Same clips as above; unit clips are [1,0], [0,1], [.5,-1]/|.|, [-1,0]; windows [0,1] and [2,3].
    clips = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [0.5, -1.0], [-1.0, 0.0]]])
    sentence = torch.tensor([[4.0, 0.0]])  # lengths do not matter: everything is on unit vectors
    mask = torch.ones(1, 4, dtype=torch.bool)
    attention = torch.tensor([[0.1, 0.4, 0.1, 0.4]])
    tau = torch.tensor([1])
    log_g = log_gaussian(tau, torch.tensor([4]), 4, 1.0)
    base = dict(window_size=2, window_stride=2, sigma=1.0, temperature=0.5)
    u2 = 0.5 / math.sqrt(1.25)
    # F-M: max-pool of unit vectors, dot with the unit sentence: window 0 -> [1,1].x = 1, window 1 -> [u2, 0].x = u2.
    fm = math.log(1 + math.exp((u2 - 1.0) / 0.5))
    # M-F keys: window mean of unit vectors (release): 0.5 and (u2 - 1)/2.
    keys = {"mean": (0.5, (u2 - 1.0) / 2), "similarity": (1.0, u2), "attention": (0.0, -1.0)}
    for key, (k0, k1) in keys.items():
        out = unit_scale_losses(clips, sentence, mask, attention, tau, log_g, SgSciConfig(mf_key=key, **base))
        assert abs(float(out["fm"]) - fm) < 1e-5
        mf = math.log(1 + math.exp((k1 - k0) / 0.5))  # one-hot label on window 0
        assert abs(float(out["mf"]) - mf) < 1e-5, key


def _hand_output(T: int = 5):
    """A batch of one 4-clip video (of 5 slots), glance in clip 1, and a hand-made model output."""
    from momentloc.types import Batch

    mask = torch.tensor([[True, True, True, True, False]])
    batch = Batch(
        video=torch.zeros(1, T, 16), video_mask=mask, words=torch.zeros(1, 2, 24), word_mask=torch.ones(1, 2, dtype=torch.bool),
        word_ids=torch.ones(1, 2, dtype=torch.long), duration=torch.tensor([8.0]), video_group=torch.zeros(1, dtype=torch.long),
        index=torch.zeros(1, dtype=torch.long), point=torch.tensor([3.0]),
    )
    attention = torch.tensor([[0.1, 0.5, 0.3, 0.1, 0.0]])
    sim = torch.tensor([[0.9, 0.4, -0.2, 0.3, 0.0]])
    out = Output(tensors={"clip_sim": sim, "query_attention": attention, "clips": torch.ones(1, T, 2), "sentence": torch.ones(1, 2)})
    g = [math.exp(-(((i - 1) * 2 / 3) ** 2) / 2) for i in range(4)]
    return batch, out, [v / sum(g) for v in g]


@pytest.mark.parametrize("form", ["logits", "log"])
def test_global_loss_on_the_attention_by_hand(form):
    batch, out, g = _hand_output()
    model = _small(sigma=1.0, temperature=1.0, use_fm=False, use_mf=False, global_on="attention", global_form=form)
    loss = model.loss(out, batch)["total"]
    a = [0.1, 0.5, 0.3, 0.1]
    if form == "logits":  # the release: cross-entropy with the attention probabilities as logits
        lse = math.log(sum(math.exp(v) for v in a))
        expected = -sum(gi * (ai - lse) for gi, ai in zip(g, a))
    else:  # Eq. (11) with S = A
        expected = -sum(gi * math.log(ai) for gi, ai in zip(g, a))
    assert abs(float(loss) - expected) < 1e-6


def test_global_loss_on_similarity_is_the_control():
    batch, out, g = _hand_output()
    model = _small(sigma=1.0, temperature=1.0, use_fm=False, use_mf=False, global_on="similarity")
    s = [0.9, 0.4, -0.2, 0.3]
    lse = math.log(sum(math.exp(v) for v in s))
    expected = -sum(gi * (si - lse) for gi, si in zip(g, s))
    assert abs(float(model.loss(out, batch)["total"]) - expected) < 1e-6


def test_anchor_follows_the_tensor_the_global_loss_trains():
    batch, out, _ = _hand_output()
    assert _small(global_on="attention").anchors(out, batch).tolist() == [1]  # argmax of the attention
    assert _small(global_on="similarity").anchors(out, batch).tolist() == [0]  # argmax of S
    assert _small(global_on="attention", anchor="similarity").anchors(out, batch).tolist() == [0]


def test_video_gca_only_rescales_each_clip():
    # Eqs. (9)-(10) multiply clip i by alpha + (1 - alpha) V_c(i): after normalisation (where the
    # release reads the clips) only the sign of that scalar survives.
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8)
    mask = torch.ones(2, 6, dtype=torch.bool)
    scores = torch.rand(2, 6, 3)
    pooled = torch.randn(2, 8)
    out = granularity_alignment(x, mask, scores, torch.ones(2, 3, dtype=torch.bool), pooled, alpha=0.3)
    scale = (out * x).sum(-1) / (x * x).sum(-1)
    torch.testing.assert_close(out, scale[..., None] * x)
    unit = torch.nn.functional.normalize
    torch.testing.assert_close(unit(out, dim=-1), torch.sign(scale)[..., None] * unit(x, dim=-1))


def test_granularity_alignment_eqs_7_to_10():
    x = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # two clips
    x_mask = torch.ones(1, 2, dtype=torch.bool)
    # columns = words; word 2 is padding and must not count in the row max
    scores = torch.tensor([[[0.2, 0.7, 0.9], [0.8, 0.3, 0.9]]])
    other_mask = torch.tensor([[True, True, False]])
    pooled = torch.tensor([[0.0, 2.0]])
    out = granularity_alignment(x, x_mask, scores, other_mask, pooled, alpha=0.3)
    prior_att = [0.7, 0.8]  # Eq. (7)
    prior_glob = [0.0, 1 / math.sqrt(2)]  # Eq. (8)
    c = [(a + b) / 2 for a, b in zip(prior_att, prior_glob)]
    expected = torch.tensor([[[0.3 + 0.7 * c[0], 0.0], [0.3 + 0.7 * c[1], 0.3 + 0.7 * c[1]]]])
    torch.testing.assert_close(out, expected)
    only_att = granularity_alignment(x, x_mask, scores, other_mask, pooled, alpha=0.0, prior="attention")
    torch.testing.assert_close(only_att[0, :, 0], torch.tensor(prior_att))


@pytest.mark.parametrize("name", ["sg_sci_charades_sta", "sg_sci_tacos", "sg_sci_synthetic_ci"])
def test_paper_config_trains_one_step(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    T = min(cfg.data.max_clips or 64, 128)  # TACoS' 512 clips only cost time here
    cfg, model, batch = config_model_and_batch(name, "point", T, words=10)
    assert cfg.model.name == "sg_sci"
    losses = training_step(model, batch, cfg.optim.lr)
    assert set(losses) >= {"total", "global", "fm", "mf"}
    check_decode(model, batch, 5, ranked=False)  # NMS-kept spans first, then suppressed fillers


def test_paper_hyper_parameters_in_configs():
    p = load_config(CONFIGS / "sg_sci_charades_sta.yaml").model.params
    assert (p["alpha"], p["beta"], p["gamma"], p["sigma"], p["dim"]) == (0.3, 0.1, 0.1, 0.04, 512)
    assert (p["window_size"], p["window_stride"]) == (8, 4)
    for name in ("sg_sci_charades_sta", "sg_sci_tacos", "sg_sci_synthetic_ci"):
        q = load_config(CONFIGS / f"{name}.yaml").model.params
        assert q["sigma"] == 0.04 and q["global_on"] == "attention", name
    for name, bs in (("sg_sci_charades_sta", 512), ("sg_sci_tacos", 64)):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.train.batch_size == bs and cfg.optim.name == "adamw" and cfg.optim.lr == 1e-4
        assert cfg.data.glance == "shipped"


def _small(**kw) -> SgSciModel:
    torch.manual_seed(0)
    cfg = SgSciConfig(dim=32, num_heads=4, num_layers=1, gru_layers=1, max_clips=32, window_size=4, window_stride=2, **kw)
    return SgSciModel(cfg, InputSpec(video_dim=16, text_dim=24, vocab_size=50, num_clips=None))


def _point_batch():
    return random_batch(3, 20, 16, num_words=6, text_dim=24, vocab_size=50, supervision="point", variable_length=True, seed=3)


@pytest.mark.parametrize(
    "flags,keys",
    [
        ({"use_fm": False, "use_mf": False}, {"global"}),
        ({"use_global": False, "use_mf": False}, {"fm"}),
        ({"use_global": False, "use_fm": False}, {"mf"}),
        ({"use_global": False}, {"fm", "mf"}),
        ({"use_fm": False, "use_mf": False, "global_on": "similarity"}, {"global"}),
        ({"global_on": "similarity"}, {"global", "fm", "mf"}),
    ],
)
def test_table3_switches_select_the_losses(flags, keys):
    model = _small(**flags).eval()
    batch = _point_batch()
    with torch.no_grad():
        losses = model.loss(model(batch), batch)
    cfg = model.cfg
    expected = (float(losses["global"]) if "global" in keys else 0.0) + (cfg.beta * float(losses["fm"]) if "fm" in keys else 0.0) \
        + (cfg.gamma * float(losses["mf"]) if "mf" in keys else 0.0)
    assert abs(losses["total"].item() - expected) < 1e-5
    assert not ({"fm", "mf"} - keys) & set(losses)


def test_all_losses_off_is_a_config_error():
    with pytest.raises(ValueError, match="at least one"):
        SgSciConfig(use_global=False, use_fm=False, use_mf=False)


def test_gca_switches_change_the_representation():
    batch = _point_batch()
    outs = {}
    for key, flags in {"full": {}, "none": {"gca": False}, "video": {"gca_text": False}, "text": {"gca_video": False}}.items():
        model = _small(**flags).eval()
        with torch.no_grad():
            outs[key] = model(batch)
    assert not torch.allclose(outs["full"]["clips"], outs["none"]["clips"])
    # GCA on the video only leaves the words as the cross-attention produced them, and vice versa.
    torch.testing.assert_close(outs["video"]["words"], outs["none"]["words"])
    torch.testing.assert_close(outs["text"]["clips"], outs["none"]["clips"])
    torch.testing.assert_close(outs["video"]["clips"], outs["full"]["clips"])


def test_state_dict_round_trip_gives_identical_outputs():
    a = _small()
    torch.manual_seed(123)
    assert_round_trip(a, SgSciModel(a.cfg, a.spec), _point_batch(), "clip_sim")


def test_loss_refuses_a_batch_without_point():
    model = _small()
    batch = random_batch(2, 12, 16, num_words=5, text_dim=24, vocab_size=50, supervision="weak")
    with pytest.raises(ValueError, match="point"):
        model.loss(model(batch), batch)


def test_learns_beyond_the_prior_on_synthetic(ci_synth, tmp_path):
    # The release's reading trains the anchor through the attention, which six CI epochs only partly
    # train (docs/methods/sg_sci.md): it clears the prior on R1@0.3 and mIoU, not yet twice its R1@0.5.
    prior = metrics_on_test("prior_synthetic_ci", ci_synth, tmp_path)
    sg_sci = metrics_on_test("sg_sci_synthetic_ci", ci_synth, tmp_path)
    print(f"synthetic CI test R1@0.3 / mIoU: SG-SCI {sg_sci['R1@0.3']:.1f} / {sg_sci['mIoU']:.1f}, "
          f"prior {prior['R1@0.3']:.1f} / {prior['mIoU']:.1f}")
    assert sg_sci["R1@0.3"] >= 1.3 * prior["R1@0.3"], (sg_sci, prior)
    assert sg_sci["mIoU"] >= 1.15 * prior["mIoU"], (sg_sci, prior)
