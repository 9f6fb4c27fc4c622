"""2D-TAN's map size is ``map_size``; configs and checkpoints that call it ``num_clips`` (its old name) still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import CONFIGS
from conftest import tiny_overrides

from momentloc.checkpoint import atomic_save, load_checkpoint
from momentloc.config import load_config
from momentloc.errors import ConfigError
from momentloc.models.base import InputSpec
from momentloc.models.build import build_model
from momentloc.models.tan2d import Tan2dConfig

SPEC = InputSpec(video_dim=16, text_dim=24, vocab_size=30, num_clips=None)


def _config(tmp_path: Path, params: str) -> Path:
    """A 2D-TAN config on the CI synthetic data whose model.params are ``params`` (a YAML flow mapping)."""
    path = tmp_path / "tan2d.yaml"
    path.write_text(f"base: [{CONFIGS.parent / 'data' / 'synthetic_ci.yaml'}]\n"
                    f"model: {{name: tan2d, params: {params}}}\n")
    return path


def test_shipped_configs_say_map_size():
    for path in CONFIGS.glob("tan2d*.yaml"):
        params = load_config(path).model.params
        assert "map_size" in params and "num_clips" not in params, path.name


def test_old_name_in_a_config_warns_and_builds_the_same_model(tmp_path):
    small = "hidden_size: 16, num_layers: 1, lstm_layers: 1"
    with pytest.warns(FutureWarning, match=r"'num_clips' is now called 'map_size'") as seen:
        old = load_config(_config(tmp_path, f"{{num_clips: 8, {small}}}"))
        torch.manual_seed(0)
        then = build_model(old, SPEC)
    assert all("\n" not in str(w.message) for w in seen)
    torch.manual_seed(0)
    now = build_model(load_config(_config(tmp_path, f"{{map_size: 8, {small}}}")), SPEC)
    assert then.cfg == now.cfg and then.cfg.map_size == 8
    assert then.candidate_mask.shape == (8, 8)
    assert then.state_dict().keys() == now.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(then.state_dict().values(), now.state_dict().values()))


def test_both_names_are_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"'num_clips' is the old name of 'map_size'"):
        Tan2dConfig(num_clips=8, map_size=8)
    with pytest.raises(ConfigError, match=r"model.params \(tan2d\).*old name of 'map_size'"):
        load_config(_config(tmp_path, "{num_clips: 8, map_size: 8}"))


def test_checkpoint_whose_config_says_num_clips_loads(tiny_synth, tmp_path):
    from momentloc.predict import Predictor
    from momentloc.training import train

    sets = [*tiny_overrides(tiny_synth, tmp_path / "runs"), "train.epochs=1", "model.params.map_size=8",
            "model.params.hidden_size=16", "model.params.num_layers=1"]
    new = train(load_config(CONFIGS / "tan2d_synthetic_ci.yaml", sets)).checkpoint
    ckpt = load_checkpoint(new)
    params = ckpt["momentloc"]["config"]["model"]["params"]
    params["num_clips"] = params.pop("map_size")  # as a checkpoint written before the rename stores it
    old = atomic_save(ckpt, tmp_path / "old.ckpt")
    with pytest.warns(FutureWarning, match="map_size"):
        then = Predictor.from_checkpoint(old, device="cpu")
    now = Predictor.from_checkpoint(new, device="cpu")
    assert then.module.model.cfg == now.module.model.cfg
    feats = np.random.default_rng(0).standard_normal((30, 16)).astype(np.float32)
    queries = ["the person opens the door", "someone sits down"]
    assert then.localize(then.encode_video(feats, duration=30.0), queries, top_k=3) == \
        now.localize(now.encode_video(feats, duration=30.0), queries, top_k=3)
