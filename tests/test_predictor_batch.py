"""Predictor's query batches (one video on the device, shared by every row) give what a collated batch gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import CONFIGS

from momentloc.config import load_config
from momentloc.data.dataset import collate
from momentloc.data.text import PAD, UNK, Vocabulary
from momentloc.models.base import InputSpec
from momentloc.models.build import build_model
from momentloc.predict import Predictor

MODELS = ["prior", "span", "tan2d", "snag", "vlanet", "fsan", "viga", "sg_sci"]


@pytest.mark.parametrize("name", MODELS)
def test_query_batch_matches_a_collated_batch(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}_synthetic_ci.yaml")
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    vectors = rng.standard_normal((len(words) + 2, cfg.data.text.dim)).astype(np.float32)
    vectors[0] = 0.0
    vocab = Vocabulary([PAD, UNK] + words, vectors)
    torch.manual_seed(0)
    model = build_model(cfg, InputSpec(video_dim=cfg.data.feature_dim, text_dim=vocab.dim, vocab_size=len(vocab),
                                       num_clips=cfg.data.num_clips)).eval()
    pred = Predictor.from_model(model, vocab, cfg)
    clips = cfg.data.num_clips or 40
    enc = pred.encode_video(rng.standard_normal((clips, cfg.data.feature_dim)).astype(np.float32), duration=30.0)
    queries = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9 w10 w11", "w3"]
    got = pred.localize(enc, queries, top_k=3, batch_size=3)
    items = [{"index": i, "video_id": "v", "video": enc.features, "word_ids": torch.from_numpy(vocab.encode(q, 20)[0]),
              "duration": 30.0} for i, q in enumerate(queries)]
    with torch.no_grad():
        batch = collate(items, vocab)
        want = model.decode(model(batch), batch, 3)
    assert len(got) == len(want) == len(queries)
    for g, w in zip(got, want):
        assert len(g) == len(w) > 0
        for a, b in zip(g, w):
            assert (a.start, a.end) == pytest.approx((b.start, b.end), abs=1e-4)
            assert a.score == pytest.approx(b.score, abs=1e-5)
