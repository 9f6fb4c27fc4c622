"""ViGA-style baseline: the Gaussian KL by hand, anchor expansion, decoding, configs, save/reload."""

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
    anchor_proposals,
    kl_divergence,
    masked_log_softmax,
    span_features,
)
from momentloc.models.viga import VigaConfig, VigaModel
from momentloc.registry import get_model_class
from momentloc.types import Batch


def _small(**kw) -> VigaModel:
    torch.manual_seed(0)
    cfg = VigaConfig(dim=32, num_heads=4, num_layers=1, gru_layers=1, max_clips=32, **kw)
    return VigaModel(cfg, InputSpec(video_dim=16, text_dim=24, vocab_size=50, num_clips=None))


def _point_batch(seed: int = 3) -> Batch:
    return random_batch(3, 20, 16, num_words=6, text_dim=24, vocab_size=50, supervision="point", variable_length=True, seed=seed)


def test_registered_as_point_model():
    assert get_model_class("viga") is VigaModel
    assert VigaModel.supervision == "point"


def test_kl_by_hand():
    target = torch.tensor([[0.2, 0.5, 0.3, 0.0]])
    scores = torch.tensor([[0.5, 0.0, -0.5, 0.9]])
    mask = torch.tensor([[True, True, True, False]])
    log_p = masked_log_softmax(scores, mask, 0.5)
    # the padded clip takes no probability mass
    lse = math.log(math.exp(1.0) + 1.0 + math.exp(-1.0))
    p = [math.exp(1.0 - lse), math.exp(-lse), math.exp(-1.0 - lse)]
    expected = sum(t * math.log(t / q) for t, q in zip([0.2, 0.5, 0.3], p))
    assert abs(float(kl_divergence(target, log_p, mask)) - expected) < 1e-6


@pytest.mark.parametrize("global_on", ["similarity", "attention"])
def test_loss_is_kl_between_glance_gaussian_and_the_query_distribution(global_on):
    # Drive the model's loss through a hand-made map: 4 valid clips of 5, glance in clip 1. On the
    # attention (the release) the probabilities are the logits, as in ViGA's released code.
    model = _small(sigma=1.0, temperature=1.0, global_on=global_on)
    sim = torch.tensor([[0.1, 0.4, -0.2, 0.3, 0.0]])
    mask = torch.tensor([[True, True, True, True, False]])
    batch = Batch(
        video=torch.zeros(1, 5, 16), video_mask=mask, words=torch.zeros(1, 2, 24), word_mask=torch.ones(1, 2, dtype=torch.bool),
        word_ids=torch.ones(1, 2, dtype=torch.long), duration=torch.tensor([8.0]), video_group=torch.zeros(1, dtype=torch.long),
        index=torch.zeros(1, dtype=torch.long), point=torch.tensor([3.0]),
    )
    loss = model.loss(Output(tensors={"clip_sim": sim, "query_attention": sim}), batch)["total"]
    # 3.0 s of 8.0 s in 4 clips -> clip 1. G_i = exp(-((i-1) * 2/3)^2 / 2) (constants cancel when normalised).
    g = [math.exp(-(((i - 1) * 2 / 3) ** 2) / 2) for i in range(4)]
    g = [v / sum(g) for v in g]
    s = [0.1, 0.4, -0.2, 0.3]
    lse = math.log(sum(math.exp(v) for v in s))
    expected = sum(gi * (math.log(gi) - (si - lse)) for gi, si in zip(g, s))
    assert abs(float(loss) - expected) < 1e-6


def test_anchor_proposals_hold_the_anchor():
    valid, span = anchor_proposals(torch.tensor([5]), torch.tensor([10]), 10, [0.2], [0.0])
    # length 2, step 2, leftmost start 4: only [4, 6)
    assert span.tolist() == [[2]] and valid[0, 0].nonzero().flatten().tolist() == [4]
    valid, _ = anchor_proposals(torch.tensor([5]), torch.tensor([10]), 10, [0.2], [0.0, 0.5])
    assert valid[0, 0].nonzero().flatten().tolist() == [4, 5]
    valid, span = anchor_proposals(torch.tensor([0, 7, 3]), torch.tensor([10, 8, 4]), 10, [0.1, 0.3, 0.5], [0.0, 0.3, 0.6, 0.9])
    for b, (a, n) in enumerate([(0, 10), (7, 8), (3, 4)]):
        rows, starts = valid[b].nonzero(as_tuple=True)
        assert len(starts) > 0
        for k, s in zip(rows.tolist(), starts.tolist()):
            e = s + int(span[b, k])
            assert s <= a < e <= n


def test_repeated_lengths_of_short_videos_are_kept_once():
    valid, span = anchor_proposals(torch.tensor([1]), torch.tensor([4]), 4, [0.1, 0.15, 0.2], [0.0])
    # every factor rounds to one clip on a 4-clip video
    assert span.tolist() == [[1, 1, 1]]
    assert valid[0].sum(1).tolist() == [1, 0, 0]


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_span_features_match_brute_force(pooling):
    torch.manual_seed(0)
    clips = torch.randn(2, 9, 5)
    mask = torch.arange(9)[None] < torch.tensor([[9], [6]])
    anchor = torch.tensor([4, 2])
    rows = torch.tensor([0, 0, 0, 1, 1])
    starts = torch.tensor([0, 3, 4, 2, 0])
    ends = torch.tensor([9, 6, 5, 6, 3])
    got = span_features(clips, mask, anchor, starts, ends, rows, pooling)
    for i in range(5):
        part = clips[rows[i], starts[i] : ends[i]]
        want = part.max(0).values if pooling == "max" else part.mean(0)
        torch.testing.assert_close(got[i], want)


def test_decode_expands_the_anchor_and_returns_seconds():
    model = _small(anchor="similarity", moment_length_factors=[0.2, 0.4], overlap_factors=[0.0, 0.5]).eval()
    batch = _point_batch()
    with torch.no_grad():
        out = model(batch)
        moments = model.decode(out, batch, k=5)
    anchors = model.anchors(out, batch)
    lengths = batch.video_mask.sum(1)
    for b, ms in enumerate(moments):
        assert 1 <= len(ms) <= 5
        clip = float(batch.duration[b]) / float(lengths[b])
        a = float(anchors[b]) * clip
        for m in ms:
            assert 0.0 <= m.start <= a + 1e-4 and a < m.end <= float(batch.duration[b]) + 1e-5
        # the first moment is the best-scoring proposal
        assert ms[0].score == max(m.score for m in ms)


def test_attention_anchor_is_available():
    model = _small(anchor="attention").eval()
    batch = _point_batch()
    with torch.no_grad():
        out = model(batch)
        a = model.anchors(out, batch)
    w2v = out["word_to_clip"]
    w = batch.word_mask[..., None].float()
    expect = ((w2v * w).sum(1) / w.sum(1)).masked_fill(~batch.video_mask, -1).argmax(1)
    assert a.tolist() == expect.tolist()


@pytest.mark.parametrize("name", ["viga_charades_sta", "viga_tacos", "viga_synthetic_ci"])
def test_paper_config_trains_one_step(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    T = min(cfg.data.max_clips or 64, 128)  # TACoS' 512 clips only cost time here
    cfg, model, batch = config_model_and_batch(name, "point", T, words=10)
    assert cfg.model.name == "viga"
    training_step(model, batch, cfg.optim.lr)
    check_decode(model, batch, 5, ranked=False)  # NMS-kept spans first, then suppressed fillers


def test_longer_video_than_position_table_is_interpolated():
    model = _small().eval()  # 32 learnable clip positions
    batch = random_batch(2, 50, 16, num_words=4, text_dim=24, vocab_size=50, supervision="point")
    with torch.no_grad():
        out = model(batch)
    assert out["clip_sim"].shape == (2, 50) and torch.isfinite(out["clip_sim"]).all()


def test_state_dict_round_trip_gives_identical_outputs():
    a = _small()
    torch.manual_seed(99)
    assert_round_trip(a, VigaModel(a.cfg, a.spec), _point_batch(), "clip_sim")


def test_embeddings_for_plug_in_objectives():
    model = _small().eval()
    batch = _point_batch()
    with torch.no_grad():
        out = model(batch)
    e = out.embeddings
    assert e["clips"].shape == (3, 20, 32) and e["sentence"].shape == (3, 32) and e["words"].shape == (3, 6, 32)
    assert torch.equal(e["clip_mask"], batch.video_mask) and torch.equal(e["word_mask"], batch.word_mask)


def test_baseline_learns_beyond_the_prior_on_synthetic(ci_synth, tmp_path):
    # With the release's loss form (attention probabilities as logits) six CI epochs leave the anchor
    # near chance (docs/methods/sg_sci.md; seed 0: R1@0.3 27.7 against the prior's 25.5); Eq. (11)'s
    # log on the same attention trains it (38.1). About 35 s on one CPU thread, so in the default run.
    prior = metrics_on_test("prior_synthetic_ci", ci_synth, tmp_path)
    viga = metrics_on_test("viga_synthetic_ci", ci_synth, tmp_path, "model.params.global_form=log")
    assert viga["R1@0.3"] >= 1.3 * prior["R1@0.3"], (viga, prior)
    assert viga["mIoU"] >= 1.2 * prior["mIoU"], (viga, prior)
