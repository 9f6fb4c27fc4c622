"""One model layer per method (configs/model/<method>.yaml): what a method's dataset configs share lives there once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from momentloc.config import load_config
from momentloc.config_files import configs_root, experiments_dir
from momentloc.registry import get_model_class, model_names

MODELS = configs_root() / "model"
EXPERIMENTS = sorted(experiments_dir().glob("*.yaml"))
# The CPU-sized configs on the generated synthetic sets choose their own small sizes (ours), not the papers';
# span and prior have one size for every dataset.
CPU_SIZED = ("_synthetic_ci", "_synthetic_long")


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def _chain(path: Path) -> list[Path]:
    """``path`` and every file its ``base:`` lists name, depth first (resolved paths)."""
    bases = _yaml(path).get("base", [])
    out = [path.resolve()]
    for base in [bases] if isinstance(bases, str) else bases:
        out += _chain(path.parent / base)
    return out


def test_every_layer_is_a_registered_model():
    # A new model needs no layer (its one config may hold everything); one it has is named after it.
    layers = {p.stem for p in MODELS.glob("*.yaml")}
    assert layers and layers <= set(model_names())


@pytest.mark.parametrize("layer", sorted(MODELS.glob("*.yaml")), ids=lambda p: p.stem)
def test_a_layer_is_its_model_and_valid_parameters(layer: Path):
    raw = _yaml(layer)
    assert set(raw) == {"model"} and raw["model"]["name"] == layer.stem
    cls = get_model_class(layer.stem)
    cls.Config.model_validate(raw["model"]["params"])


@pytest.mark.parametrize("path", [p for p in EXPERIMENTS if not p.stem.endswith(CPU_SIZED)
                                  or p.stem.startswith(("span_", "prior_"))], ids=lambda p: p.stem)
def test_experiment_layers_its_model(path: Path):
    cfg = load_config(path)
    assert (MODELS / f"{cfg.model.name}.yaml").resolve() in _chain(path), f"{path.name} does not layer its model"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_repeats_nothing_of_the_layer_it_names(path: Path):
    raw = _yaml(path)
    bases = raw.get("base", [])
    for base in [bases] if isinstance(bases, str) else bases:
        layer = (path.parent / base).resolve()
        if layer.parent == MODELS.resolve():
            shared = _yaml(layer)["model"]["params"]
            own = (raw.get("model") or {}).get("params", {})
            assert not sorted(k for k in own if k in shared and own[k] == shared[k]), f"{path.name} repeats {layer.name}"
            assert (raw.get("model") or {}).get("name") in (None, layer.stem)
