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
    obj = _identity_objective(temperature=1.0, contrast_weight=0.5, caption_weight=0.0)
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
    ],
)
def test_variants_on_tan2d(params: dict) -> None:
    torch.manual_seed(0)
    model = Tan2d(Tan2dConfig(num_clips=8, hidden_size=16, num_layers=1, lstm_layers=1), InputSpec(8, 6, 30, None))
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
    base = train(load_config(CONFIGS / "tan2d_synthetic_ci.yaml", short)).metrics["R1@0.5"]
    sscs = train(load_config(CONFIGS / "tan2d_sscs_synthetic_ci.yaml", short)).metrics["R1@0.5"]
    assert sscs >= 1.5 * prior, f"2D-TAN + Sscs R1@0.5 {sscs:.1f} vs prior {prior:.1f}"
    assert sscs > base, f"2D-TAN + Sscs R1@0.5 {sscs:.1f} vs 2D-TAN {base:.1f} after 5 epochs"
