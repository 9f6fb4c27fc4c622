"""Config layering, overrides and one-line errors for unknown or mistyped keys."""

from pathlib import Path

import pytest

from momentloc.config import load_config
from momentloc.errors import ConfigError
from momentloc.models.base import InputSpec
from momentloc.models.build import build_model

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_layers_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("data: {dataset: synthetic_ci, feature_dim: 8}\ntrain: {epochs: 3}\n")
    p = _write(tmp_path, "base: [base.yaml]\nmodel: {name: span}\ntrain: {batch_size: 4}\n")
    cfg = load_config(p, ["train.epochs=7", "optim.lr=0.01", "model.params.hidden=16"])
    assert cfg.data.feature_dim == 8
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.optim.lr) == (7, 4, 0.01)
    assert cfg.model.params == {"hidden": 16}


def test_unknown_key_is_named(tmp_path):
    p = _write(tmp_path, "data: {dataset: x, feature_dim: 8, featuers: a}\nmodel: {name: span}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'data.featuers'"):
        load_config(p)


def test_wrong_type_is_named(tmp_path):
    p = _write(tmp_path, "data: {dataset: x, feature_dim: many}\nmodel: {name: span}\n")
    with pytest.raises(ConfigError, match=r"data.feature_dim"):
        load_config(p)


def test_unknown_model_param_is_named(tmp_path):
    p = _write(tmp_path, "data: {dataset: x, feature_dim: 8}\nmodel: {name: span, params: {hiden: 3}}\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: model.params \(span\): unknown key 'hiden'"):
        load_config(p)  # when the config loads, before anything is built or written
    cfg = load_config(_write(tmp_path, "data: {dataset: x, feature_dim: 8}\nmodel: {name: span}\n"))
    cfg.model.params = {"hiden": 3}  # a config built in code still meets the same check when the model is built
    with pytest.raises(ConfigError, match=r"model.params \(span\): unknown key 'hiden'"):
        build_model(cfg, InputSpec(8, 8, 10, None))


def test_unknown_model_name_lists_known(tmp_path):
    p = _write(tmp_path, "data: {dataset: x, feature_dim: 8}\nmodel: {name: spam}\n")
    with pytest.raises(ConfigError, match=r"unknown model 'spam'.*span"):
        build_model(load_config(p), InputSpec(8, 8, 10, None))


def test_bad_override_syntax(tmp_path):
    p = _write(tmp_path, "data: {dataset: x, feature_dim: 8}\nmodel: {name: span}\n")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(p, ["train.epochs"])


def test_every_shipped_config_validates():
    configs = sorted((ROOT / "configs" / "experiment").glob("*.yaml"))
    assert configs, "no experiment configs shipped"
    for path in configs:
        cfg = load_config(path)
        assert cfg.model.name



@pytest.mark.parametrize("name, small", [("snag_qvhighlights", []), ("tan2d_qvhighlights", ["model.params.hidden_size=32"])])
def test_qvhighlights_configs_build_and_train_a_step(name, small):
    """The QVHighlights configs load on the QVHighlights data config (Moment-DETR's SlowFast + CLIP features on its
    2-s grid) and build; a model of the config's shape takes one finite training step and decodes (2D-TAN's
    512-channel 75 x 75 map is narrowed for the step: at full width it takes a minute on one CPU thread)."""
    import torch
    from _helpers import check_decode, training_step

    from momentloc.data.random_batch import random_batch

    path = ROOT / "configs" / "experiment" / f"{name}.yaml"
    cfg = load_config(path)
    assert (cfg.name, cfg.data.dataset, cfg.data.feature_dim, cfg.data.num_clips) == (name, "qvhighlights", 2304 + 512, 75)
    spec = InputSpec(video_dim=cfg.data.feature_dim, text_dim=cfg.data.text.dim, vocab_size=200, num_clips=75)
    build_model(cfg, spec)  # the full-size model builds
    torch.manual_seed(0)
    model = build_model(load_config(path, small), spec)
    batch = random_batch(2, 75, 2816, num_words=8, text_dim=cfg.data.text.dim, vocab_size=200, seed=1, duration=150.0)
    training_step(model, batch, lr=1e-4)
    check_decode(model, batch, k=5)
