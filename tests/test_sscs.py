"""Sscs support-set cross-supervision: each equation against hand-computed values, the plug-in contract."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from _helpers import CONFIGS

from momentloc.config import load_config
from momentloc.data.random_batch import random_batch
from momentloc.errors import ConfigError
from momentloc.models.base import InputSpec, Output
from momentloc.models.tan2d import Tan2d, Tan2dConfig
from momentloc.objectives.support_set import (
    SscsConfig,
    SupportSetCrossSupervision,
    caption_nll,
    gt_clip_contrastive_loss,
    gt_clip_mask,
    pair_attention_logits,
    pool_support,
    support_contrastive_loss,
)
from momentloc.registry import get_objective

E = math.e


def test_registered() -> None:
    assert get_objective("sscs") is SupportSetCrossSupervision


def test_cross_attention_pooling_by_hand() -> None:
    # Eq. 4: a_t = softmax(cos(x_t, y) / tau); Eq. 5: w = sum a_t x_t. cos = (1, 0); the third clip is outside.
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])
    y = torch.tensor([[3.0, 0.0]])
    support = torch.tensor([[True, True, False]])
    w = pool_support(x, y, support, tau=1.0)
    assert torch.allclose(w, torch.tensor([[E / (E + 1), 2 / (E + 1)]]))
    w = pool_support(x, y, support, tau=0.5)  # logits (2, 0)
    assert torch.allclose(w, torch.tensor([[E**2 / (E**2 + 1), 2 / (E**2 + 1)]]))


def test_self_attention_max_mean_pooling_by_hand() -> None:
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]])
    y = torch.zeros(1, 2)  # unused by these functions
    full = torch.ones(1, 3, dtype=torch.bool)
    # Eq. 8: z_t = sum_t' cos(x_t, x_t') / tau = (2, 1, 2); a = softmax(z).
    den = 2 * E**2 + E
    w = pool_support(x, y, full, tau=1.0, pooling="self_attention")
    assert torch.allclose(w, torch.tensor([[(E**2 * 1 + E**2 * 2) / den, E / den]]))
    assert torch.allclose(pool_support(x, y, full, 1.0, "max"), torch.tensor([[2.0, 1.0]]))
    first_two = torch.tensor([[True, True, False]])
    assert torch.allclose(pool_support(x, y, first_two, 1.0, "mean"), torch.tensor([[0.5, 0.5]]))


def test_support_contrastive_by_hand() -> None:
    # Eq. 6 with tau = 1: row i is a softmax over the batch's sentences, the own sentence is the positive.
    w = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    c = 1 / math.sqrt(2)
    row1 = -math.log(E**1 / (E**1 + E**c))
    row2 = -math.log(E**c / (E**0 + E**c))
    assert float(support_contrastive_loss(w, y, 1.0, "sum")) == pytest.approx(row1 + row2, rel=1e-6)
    assert float(support_contrastive_loss(w, y, 1.0, "mean")) == pytest.approx((row1 + row2) / 2, rel=1e-6)
    row1 = -math.log(E**10 / (E**10 + E ** (10 * c)))
    row2 = -math.log(E ** (10 * c) / (1 + E ** (10 * c)))
    assert float(support_contrastive_loss(w, y, 0.1, "sum")) == pytest.approx(row1 + row2, rel=1e-5)


def test_gt_clip_contrastive_by_hand() -> None:
    # Eq. 2, tau = 1. Video 1 clips a=(1,0), b=(0,1); video 2 clips c=(1,0) and a padded one.
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [9.0, 9.0]]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    clip_mask = torch.tensor([[True, True], [True, False]])
    gt = torch.tensor([[True, False], [True, False]])
    # Sentence 1: positive a (e^1); negatives b (e^0) and video 2's c (e^1).
    # Sentence 2: positive c (e^0); negatives video 1's a (e^0) and b (e^1).
    expected = math.log((2 * E + 1) / E) + math.log(2 + E)
    got = gt_clip_contrastive_loss(x, y, gt, clip_mask, torch.tensor([0, 1]), 1.0, "sum")
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # Pairs of one video are not each other's negatives.
    same = gt_clip_contrastive_loss(x, y, gt, clip_mask, torch.tensor([0, 0]), 1.0, "mean")
    assert float(same) == pytest.approx((math.log((E + 1) / E) + math.log(1.0)) / 2, abs=1e-6)


def test_caption_nll_by_hand() -> None:
    # Eq. 7: -log p(sentence) = -sum_t log softmax(logits_t)[word_t].
    logits = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]])
    words = torch.tensor([[2, 0]])
    both = torch.tensor([[True, True]])
    step1, step2 = math.log(3.0), math.log(1 + E + E**2)
    assert float(caption_nll(logits, words, both, "sentence")) == pytest.approx(step1 + step2, rel=1e-6)
    assert float(caption_nll(logits, words, both, "token")) == pytest.approx((step1 + step2) / 2, rel=1e-6)
    assert float(caption_nll(logits, words, torch.tensor([[True, False]]))) == pytest.approx(step1, rel=1e-6)


def test_gt_clip_mask_by_hand() -> None:
    clip_mask = torch.tensor([[True] * 4 + [False] * 2] * 2)
    windows = torch.tensor([[5.0, 10.0], [0.0, 2.0]])  # of 20 s: [0.25, 0.5] and [0, 0.1]
    got = gt_clip_mask(clip_mask, windows, torch.tensor([20.0, 20.0]))
    # Centres of 4 clips: 1/8, 3/8, 5/8, 7/8. The short window holds no centre: the clip with its middle.
    assert got.tolist() == [[False, True, False, False, False, False], [True, False, False, False, False, False]]


class _Stub(torch.nn.Module):
    """Any model exposing the embeddings Sscs reads; only its spec and widths matter here."""

    def __init__(self, dims: dict | None = None) -> None:
        super().__init__()
        self.spec = InputSpec(video_dim=2, text_dim=2, vocab_size=6, num_clips=None)
        self.cfg = SimpleNamespace()
        if dims is not None:
            self.embedding_dims = lambda: dims


def _identity_objective(**params) -> SupportSetCrossSupervision:
    obj = SupportSetCrossSupervision(SscsConfig(**params), _Stub({"clips": 2, "sentence": 2}))
    with torch.no_grad():
        for lin in (obj.psi, obj.phi):
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
    return obj


def _tiny_output(requires_grad: bool = False) -> tuple[Output, object]:
    clips = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[0.0, 1.0], [0.0, 3.0]]], requires_grad=requires_grad)
    sentence = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=requires_grad)
    out = Output(embeddings={"clips": clips, "clip_mask": torch.ones(2, 2, dtype=torch.bool), "sentence": sentence})
    batch = SimpleNamespace(
        windows=None,
        duration=torch.tensor([10.0, 10.0]),
        video_group=torch.tensor([0, 1]),
        word_ids=torch.tensor([[2, 3, 0], [4, 5, 1]]),
        word_mask=torch.tensor([[True, True, False], [True, True, True]]),
    )
    return out, batch


def test_objective_end_to_end_by_hand() -> None:
    # Identity projections, tau = 1: w_1 = (e, 2) / (e + 1) (Eqs. 4-5), w_2 = (0, 1) after normalising.
    obj = _identity_objective(temperature=1.0, contrast_weight=0.5, caption_weight=0.0, contrast_reduction="sum")
    out, batch = _tiny_output()
    n1 = math.hypot(E, 2.0)
    row1 = -math.log(E ** (E / n1) / (E ** (E / n1) + E ** (2 / n1)))
    row2 = -math.log(E**1 / (E**0 + E**1))
    losses = obj(out, batch)
    assert float(losses["contrast"]) == pytest.approx(row1 + row2, rel=1e-6)
    assert float(losses["total"].detach()) == pytest.approx(0.5 * (row1 + row2), rel=1e-6)
    assert float(losses["caption"]) == 0.0 and obj.decoder is None


def test_objective_caption_trains_embeddings_without_windows() -> None:
    obj = _identity_objective(temperature=0.1, contrast_weight=0.1, caption_weight=0.1)
    out, batch = _tiny_output(requires_grad=True)
    losses = obj(out, batch)  # the V-SS form reads no time labels: works for a weak batch
    assert float(losses["caption"]) > 0
    expected = 0.1 * float(losses["contrast"]) + 0.1 * float(losses["caption"])
    assert float(losses["total"].detach()) == pytest.approx(expected, rel=1e-6)
    losses["total"].backward()
    assert out.embeddings["clips"].grad.abs().sum() > 0 and out.embeddings["sentence"].grad.abs().sum() > 0
    with pytest.raises(ValueError, match="windows"):
        _identity_objective(support="gt")(out, batch)
    with pytest.raises(ValueError, match="windows"):
        _identity_objective(mode="gt_clip")(out, batch)


def test_objective_needs_widths_and_embeddings() -> None:
    with pytest.raises(ConfigError, match="clip_dim"):
        SupportSetCrossSupervision(SscsConfig(), _Stub())
    obj = SupportSetCrossSupervision(SscsConfig(clip_dim=2, sentence_dim=2, caption_weight=0.0), _Stub())
    _, batch = _tiny_output()
    with pytest.raises(KeyError, match="clips"):
        obj(Output(embeddings={"sentence": torch.zeros(2, 2)}), batch)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"support": "gt"},
        {"support": "non_gt", "pooling": "self_attention"},
        {"pooling": "max", "contrast_reduction": "mean", "caption_reduction": "token"},
        {"mode": "gt_clip"},
        {"negatives": "pair_attention", "contrast_reduction": "sum"},
    ],
)
def test_variants_on_tan2d(params: dict) -> None:
    torch.manual_seed(0)
    model = Tan2d(Tan2dConfig(map_size=8, hidden_size=16, num_layers=1, lstm_layers=1), InputSpec(8, 6, 30, None))
    obj = SupportSetCrossSupervision(SscsConfig(**params), model)
    batch = random_batch(4, 20, 8, num_words=5, text_dim=6, vocab_size=30, variable_length=True, queries_per_video=2)
    losses = obj(model(batch), batch)
    assert torch.isfinite(losses["total"]) and losses["caption"] > 0
    losses["total"].backward()
    assert model.clip_fc.weight.grad.abs().sum() > 0 and model.sentence.lstm.weight_ih_l0.grad.abs().sum() > 0


def test_caption_needs_a_vocabulary() -> None:
    stub = _Stub({"clips": 2, "sentence": 2})
    stub.spec = InputSpec(video_dim=2, text_dim=2, vocab_size=0, num_clips=None)
    with pytest.raises(ConfigError, match="vocab"):
        SupportSetCrossSupervision(SscsConfig(), stub)
    SupportSetCrossSupervision(SscsConfig(caption_weight=0.0), stub)


def test_paper_weights_in_configs() -> None:
    for name, lam in [("charades_sta", 0.1), ("tacos", 0.001), ("activitynet", 0.1)]:
        (section,) = load_config(CONFIGS / f"tan2d_sscs_{name}.yaml").objectives
        p = section.params
        assert section.name == "sscs" and p["temperature"] == 0.1
        assert p["contrast_weight"] == lam and p["caption_weight"] == lam
        assert (p["support"], p["pooling"]) == ("video", "cross_attention")


HAVE_TRAINING = all(importlib.util.find_spec(m) for m in ("momentloc.training", "momentloc.data.synthetic"))


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TRAINING, reason="needs momentloc.training and the synthetic benchmark")
def test_sscs_speeds_up_2dtan_on_synthetic_ci(tmp_path: Path) -> None:
    # The paper's Fig. 5a: with Sscs, 2D-TAN converges faster. Same seed, optimiser and epochs (5);
    # batch 16 so that the contrastive objective has in-batch negatives.
    from momentloc.training import train

    common = [f"data.annotations={tmp_path / 'synthetic'}", f"train.out_dir={tmp_path / 'runs'}", "train.progress=false"]
    prior = train(load_config(CONFIGS / "prior_synthetic_ci.yaml", common)).metrics["R1@0.5"]
    short = common + ["train.epochs=5", "train.batch_size=16", "optim.lr=0.002"]
    # the same config without its objective: the same encoder, schedule and batch
    base = train(load_config(CONFIGS / "tan2d_sscs_synthetic_ci.yaml", short + ["objectives=[]"])).metrics["R1@0.5"]
    sscs = train(load_config(CONFIGS / "tan2d_sscs_synthetic_ci.yaml", short)).metrics["R1@0.5"]
    assert sscs >= 1.5 * prior, f"2D-TAN + Sscs R1@0.5 {sscs:.1f} vs prior {prior:.1f}"
    assert sscs > base, f"2D-TAN + Sscs R1@0.5 {sscs:.1f} vs 2D-TAN {base:.1f} after 5 epochs"


def test_pair_attention_logits_by_hand() -> None:
    # Video 1: clips (1,0), (0,1); video 2: one clip (1,0) (the second is outside its support set). tau = 1.
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [7.0, 7.0]]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    support = torch.tensor([[True, True], [True, False]])
    got = pair_attention_logits(x, y, support, 1.0)
    # w_11 = (e, 1)/(e+1) attended by y_1; w_12 = (1, e)/(e+1) by y_2; video 2 has only (1, 0) for both.
    n = math.hypot(E, 1.0)
    expected = torch.tensor([[E / n, E / n], [1.0, 0.0]])
    assert torch.allclose(got, expected, atol=1e-6)
    # The diagonal is the printed reading's positive: w_i attended by its own sentence.
    w = pool_support(x, y, support, 1.0)
    assert torch.allclose(got.diagonal(), (torch.nn.functional.normalize(w, dim=-1) * y).sum(-1), atol=1e-6)


def test_negatives_readings_differ_only_off_the_diagonal() -> None:
    out, batch = _tiny_output()
    printed = _identity_objective(temperature=1.0, caption_weight=0.0, contrast_reduction="sum")
    paired = _identity_objective(temperature=1.0, caption_weight=0.0, contrast_reduction="sum",
                                 negatives="pair_attention")
    # Video 2's clips both point along (0, 1): every sentence attends to the same w, so its row is unchanged;
    # video 1's negative (w_12, y_2) is re-attended by y_2 and scores higher than with w_11.
    n1 = math.hypot(E, 2.0)
    row1_printed = -math.log(E ** (E / n1) / (E ** (E / n1) + E ** (2 / n1)))
    w12 = torch.tensor([1.0, 2 * E]) / (1 + E)
    row1_paired = -math.log(E ** (E / n1) / (E ** (E / n1) + E ** float(w12[1] / w12.norm())))
    row2 = -math.log(E / (1 + E))
    assert float(printed(out, batch)["contrast"]) == pytest.approx(row1_printed + row2, rel=1e-6)
    assert float(paired(out, batch)["contrast"]) == pytest.approx(row1_paired + row2, rel=1e-6)


def test_contrast_default_is_the_batch_mean() -> None:
    assert SscsConfig().contrast_reduction == "mean"
    out, batch = _tiny_output()
    mean = _identity_objective(temperature=1.0, caption_weight=0.0)(out, batch)["contrast"]
    total = _identity_objective(temperature=1.0, caption_weight=0.0, contrast_reduction="sum")(out, batch)["contrast"]
    assert float(total) == pytest.approx(2 * float(mean), rel=1e-6)


def test_control_support_is_outside_the_moment() -> None:
    # Four clips; the window [0, 5] s of 20 s holds clip 0 only. The control (non_gt) pools clips 1-3, V-SS all.
    x = torch.tensor([[[9.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0]] * 4])
    clip_mask = torch.ones(2, 4, dtype=torch.bool)
    batch = SimpleNamespace(windows=torch.tensor([[0.0, 5.0], [0.0, 20.0]]), duration=torch.tensor([20.0, 20.0]))
    obj = _identity_objective(support="non_gt")
    support = obj._support(clip_mask, batch)
    # The second moment spans the video: an empty outside set falls back to every clip.
    assert support.tolist() == [[False, True, True, True], [True, True, True, True]]
    w = pool_support(x, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), support, 0.1)
    assert torch.allclose(w[0], torch.tensor([0.0, 1.0]))


def test_variants_reachable_by_set() -> None:
    sets = ["objectives.0.params.support=non_gt", "objectives.0.params.contrast_reduction=sum",
            "objectives.0.params.negatives=pair_attention"]
    (section,) = load_config(CONFIGS / "tan2d_sscs_charades_sta.yaml", sets).objectives
    assert (section.params["support"], section.params["contrast_reduction"]) == ("non_gt", "sum")
    assert section.params["negatives"] == "pair_attention" and section.params["contrast_weight"] == 0.1
    assert load_config(CONFIGS / "tan2d_sscs_charades_sta.yaml", ["objectives=[]"]).objectives == []


def test_paper_encoder_and_schedule_in_configs() -> None:
    for name in ("charades_sta", "tacos", "activitynet"):
        cfg = load_config(CONFIGS / f"tan2d_sscs_{name}.yaml")
        assert cfg.model.params["bidirectional"] is True and cfg.model.params["lstm_layers"] == 3
        assert cfg.optim.scheduler == "plateau" and cfg.train.batch_size == 256
        assert cfg.objectives[0].params["contrast_reduction"] == "mean"
        # the 2D-TAN baseline config keeps 2D-TAN's own unidirectional LSTM
        assert load_config(CONFIGS / f"tan2d_{name}.yaml").model.params["bidirectional"] is False
    ci = load_config(CONFIGS / "tan2d_sscs_synthetic_ci.yaml")
    assert ci.model.params["bidirectional"] is True and ci.optim.scheduler == "plateau"


def _concept_batch(g: torch.Generator, protos: torch.Tensor, word_vecs: torch.Tensor, T: int = 8) -> tuple:
    """One pair per concept: noise clips with the concept's prototype inside a random window; the sentence is
    the concept's word and two noise words."""
    K, D = protos.shape
    video = 0.3 * torch.randn(K, T, D, generator=g)
    start = torch.randint(0, T - 2, (K,), generator=g)
    inside = (torch.arange(T)[None] >= start[:, None]) & (torch.arange(T)[None] < start[:, None] + 2)
    video = video + inside[..., None] * protos[:, None, :]
    words = torch.cat([word_vecs[:, None], 0.3 * torch.randn(K, 2, word_vecs.shape[1], generator=g)], 1)
    ids = torch.stack([torch.arange(K) + 2, torch.full((K,), K + 2), torch.full((K,), K + 3)], 1)
    from momentloc.types import Batch

    batch = Batch(video=video, video_mask=torch.ones(K, T, dtype=torch.bool), words=words,
                  word_mask=torch.ones(K, 3, dtype=torch.bool), word_ids=ids, duration=torch.full((K,), float(T)),
                  video_group=torch.arange(K), index=torch.arange(K),
                  windows=torch.stack([start, start + 2], 1).float(), num_videos=K, word_lengths=(3,) * K)
    return batch, inside


def test_sscs_learns_to_match_sentences_and_find_their_clips() -> None:
    # Learning test: the V-SS objective alone (no time labels) makes each sentence retrieve its own video in
    # the batch and its cross-attention (Eq. 4) fall on the clips of its moment.
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    K, D, E_ = 8, 12, 10
    protos, word_vecs = torch.randn(K, D, generator=g), torch.randn(K, E_, generator=g)
    model = Tan2d(Tan2dConfig(map_size=8, hidden_size=32, num_layers=1, lstm_layers=1, bidirectional=True),
                  InputSpec(D, E_, K + 4, None))
    obj = SupportSetCrossSupervision(SscsConfig(), model)
    opt = torch.optim.Adam(list(model.parameters()) + list(obj.parameters()), lr=3e-3)

    def scores(batch, inside) -> tuple[float, float]:
        with torch.no_grad():
            out = model(batch)
            x, y = obj.psi(out.embeddings["clips"]), obj.phi(out.embeddings["sentence"])
            w = pool_support(x, y, out.embeddings["clip_mask"], 0.1)
            hits = (torch.nn.functional.normalize(w, dim=-1) @ torch.nn.functional.normalize(y, dim=-1).t()).argmax(1)
            att = torch.softmax(torch.einsum("btd,bd->bt", torch.nn.functional.normalize(x, dim=-1),
                                             torch.nn.functional.normalize(y, dim=-1)) / 0.1, -1)
            return float((hits == torch.arange(K)).float().mean()), float((att * inside).sum(1).mean())

    test = _concept_batch(torch.Generator().manual_seed(99), protos, word_vecs)
    before = scores(*test)
    for _ in range(80):
        batch, _ = _concept_batch(g, protos, word_vecs)
        loss = obj(model(batch), batch)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = scores(*test)
    assert after[0] >= 0.875 and after[0] > before[0], f"retrieval {before[0]:.2f} -> {after[0]:.2f}"
    assert after[1] > 0.6 and after[1] > before[1] + 0.2, f"attention on the moment {before[1]:.2f} -> {after[1]:.2f}"


def test_fusion_space_reads_2dtan_fusion_sides() -> None:
    # space=fusion: X_i, Y_i are the two sides of 2D-TAN's Hadamard fusion (its projected clips, the map's
    # diagonal, and its projected sentence), with no projections of Sscs's own.
    torch.manual_seed(0)
    model = Tan2d(Tan2dConfig(map_size=8, hidden_size=16, num_layers=1, lstm_layers=1), InputSpec(8, 6, 30, None))
    obj = SupportSetCrossSupervision(SscsConfig(space="fusion"), model)
    assert not list(obj.psi.parameters()) and not list(obj.phi.parameters())
    batch = random_batch(4, 20, 8, num_words=5, text_dim=6, vocab_size=30)
    out = model(batch)
    clips = out.embeddings["clips"]
    expected = torch.nn.functional.linear(clips, model.map_proj.weight.flatten(1), model.map_proj.bias)
    assert torch.allclose(out.embeddings["fusion_clips"], expected, atol=1e-6)
    assert torch.allclose(out.embeddings["fusion_sentence"], model.text_proj(out.embeddings["sentence"]), atol=1e-6)
    obj(out, batch)["total"].backward()
    assert model.map_proj.weight.grad.abs().sum() > 0 and model.text_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="fusion"):
        SupportSetCrossSupervision(SscsConfig(space="fusion"), _Stub({"clips": 2, "sentence": 2}))
