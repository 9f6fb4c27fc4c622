"""Predictor's query batches (one video on the device, shared by every row) give what a collated batch gives."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from _helpers import CONFIGS

from momentloc.config import load_config
from momentloc.data.batch import collate
from momentloc.data.text import PAD, UNK, Vocabulary
from momentloc.models.base import InputSpec
from momentloc.models.build import build_model
from momentloc.predict import Predictor

MODELS = ["prior", "span", "tan2d", "snag", "vlanet", "fsan", "viga", "sg_sci"]
# The first layer that reads a batch's clip features, per model with a video branch.
VIDEO_INPUT = {"span": "video_proj", "tan2d": "clip_fc", "snag": "video_net", "vlanet": "video_fc", "fsan": "video_fc",
               "viga": "encoder.video_proj", "sg_sci": "encoder.video_proj"}


def _model(name: str, rng: np.random.Generator):
    cfg = load_config(CONFIGS / f"{name}_synthetic_ci.yaml")
    words = [f"w{i}" for i in range(30)]
    vectors = rng.standard_normal((len(words) + 2, cfg.data.text.dim)).astype(np.float32)
    vectors[0] = 0.0
    vocab = Vocabulary([PAD, UNK] + words, vectors)
    torch.manual_seed(0)
    model = build_model(cfg, InputSpec(video_dim=cfg.data.feature_dim, text_dim=vocab.dim, vocab_size=len(vocab),
                                       num_clips=cfg.data.num_clips)).eval()
    return cfg, vocab, model


@pytest.mark.parametrize("name", MODELS)
def test_query_batch_matches_a_collated_batch(name: str) -> None:
    rng = np.random.default_rng(0)
    cfg, vocab, model = _model(name, rng)
    pred = Predictor.from_model(model, vocab, cfg)
    clips = cfg.data.num_clips or 40
    enc = pred.encode_video(rng.standard_normal((clips, cfg.data.feature_dim)).astype(np.float32), duration=30.0)
    queries = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9 w10 w11", "w3"]
    got = pred.localize(enc, queries, top_k=3, batch_size=3)
    items = [{"index": i, "video_id": "v", "video": enc.features, "word_ids": torch.from_numpy(vocab.encode(q, 20)[0]),
              "duration": 30.0} for i, q in enumerate(queries)]
    with torch.no_grad():
        batch = collate(items, vocab.vectors)
        want = model.decode(model(batch), batch, 3)
    assert len(got) == len(want) == len(queries)
    for g, w in zip(got, want):
        assert len(g) == len(w) > 0
        for a, b in zip(g, w):
            assert (a.start, a.end) == pytest.approx((b.start, b.end), abs=1e-4)
            assert a.score == pytest.approx(b.score, abs=1e-5)


@pytest.mark.parametrize("name", sorted(VIDEO_INPUT))
def test_queries_on_one_video_encode_it_once(name: str) -> None:
    """At inference a video's clips go through the video branch once for all its queries, with the same outputs
    as when every query is encoded with its own copy of the video."""
    rng = np.random.default_rng(1)
    cfg, vocab, model = _model(name, rng)
    clips = cfg.data.num_clips or 40
    feats = torch.from_numpy(rng.standard_normal((clips, cfg.data.feature_dim)).astype(np.float32))
    videos = [feats, feats * 0.5]  # two videos, three queries each
    queries = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9", "w3", "w9 w1", "w2 w2 w5"]
    items = [{"index": i, "video_id": f"v{i % 2}", "video": videos[i % 2],
              "word_ids": torch.from_numpy(vocab.encode(q, 20)[0]), "duration": 30.0} for i, q in enumerate(queries)]
    rows = []
    model.get_submodule(VIDEO_INPUT[name]).register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    with torch.no_grad():
        batch = collate(items, vocab.vectors)
        assert batch.video_group.unique().numel() == 2
        shared = model.decode(model(batch), batch, 3)
        alone_batch = replace(batch, video_group=torch.arange(batch.size), num_videos=batch.size)
        alone = model.decode(model(alone_batch), alone_batch, 3)
    assert rows == [2, len(queries)]  # two videos encoded, then every row on its own
    for g, w in zip(shared, alone):
        assert len(g) == len(w) > 0
        for a, b in zip(g, w):
            assert (a.start, a.end) == pytest.approx((b.start, b.end), abs=1e-4)
            assert a.score == pytest.approx(b.score, abs=1e-5)


@pytest.mark.parametrize("precision, device, enabled", [("bf16-mixed", "cuda", True), ("32-true", "cuda", False),
                                                        ("bf16-mixed", "cpu", False)])
def test_predictor_autocasts_like_evaluation(precision: str, device: str, enabled: bool) -> None:
    """A checkpoint trained in bf16 mixed precision runs its inference in bf16 autocast on a GPU, as eval does."""
    rng = np.random.default_rng(0)
    cfg, vocab, model = _model("span", rng)
    cfg.train.precision = precision
    pred = Predictor.from_model(model, vocab, cfg)
    pred.device = torch.device(device)  # the choice only; nothing runs on it here
    assert pred.autocast_dtype == (torch.bfloat16 if enabled else None)
