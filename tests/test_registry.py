"""Registries find their modules; a model is one module + one CI config + its docs, and nothing else.

The last test adds a model the way a user would (a module that registers it
and its ``<name>_synthetic_ci.yaml``), in a folder outside the repository,
and shows that it is listed, built from its config, and run through the
weak-supervision, inference and host-read contracts without being named in
any of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _helpers import CONFIGS
from _models import ci_config_name, config_path

import momentloc.models
from momentloc import registry
from momentloc.config import load_config
from momentloc.models.base import GroundingModel, InputSpec
from momentloc.models.build import build_model
from momentloc.registry import discover, get_model_class, model_names

TESTS = Path(__file__).resolve().parent
DOCS = TESTS.parent / "docs"

TINY_MODEL = '''
"""A tiny weakly supervised grounder: the clip that best matches the sentence, trained video against sentence."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from momentloc.models.base import GroundingModel, InputSpec, ModelConfig, Output
from momentloc.registry import register_model
from momentloc.types import Batch, Moment


class TinyConfig(ModelConfig):
    """Width of the shared space."""

    hidden: int = 8


@register_model("tiny_weak")
class TinyWeak(GroundingModel):
    """Scores each clip by its dot product with the mean word; a video's score is its best clip's."""

    supervision = "weak"
    Config = TinyConfig

    def __init__(self, cfg: TinyConfig, spec: InputSpec) -> None:
        super().__init__(cfg, spec)
        self.video = nn.Linear(spec.video_dim, cfg.hidden)
        self.text = nn.Linear(spec.text_dim, cfg.hidden)

    def forward(self, batch: Batch) -> Output:
        clips = self.video(batch.video)
        mask = batch.word_mask[..., None].float()
        sentence = (self.text(batch.words) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        scores = torch.einsum("bth,bh->bt", clips, sentence).masked_fill(~batch.video_mask, -1e4)
        return Output(tensors={"scores": scores, "clips": clips, "sentence": sentence})

    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        other = out["sentence"].roll(1, 0)  # another row's sentence as the negative
        neg = torch.einsum("bth,bh->bt", out["clips"], other).masked_fill(~batch.video_mask, -1e4)
        return {"total": F.softplus(neg.amax(1) - out["scores"].amax(1)).mean()}

    def decode(self, out: Output, batch: Batch, k: int = 5) -> list[list[Moment]]:
        scores, order = out["scores"].sort(1, descending=True)
        lengths = batch.video_mask.sum(1)
        rows = zip(scores[:, :k].cpu().tolist(), order[:, :k].cpu().tolist(), lengths.cpu().tolist(),
                   batch.duration.cpu().tolist())
        return [[Moment(i * d / n, (i + 1) * d / n, s) for s, i in zip(ss, ii) if i < n] for ss, ii, n, d in rows]
'''


def _tiny_config(data_config: Path) -> str:
    return textwrap.dedent(f"""\
        base: [{data_config}]
        name: tiny_weak_synthetic_ci
        model: {{name: tiny_weak, params: {{hidden: 8}}}}
        train: {{epochs: 1, batch_size: 8}}
        """)


def test_discovery_lists_every_module_of_the_package():
    found = discover("momentloc.models")
    expected = {"prior", "span", "tan2d", "snag", "vlanet", "fsan", "viga", "sg_sci"}
    assert {f"momentloc.models.{m}" for m in expected} <= set(found)
    assert "momentloc.models.base" in found and found == sorted(found)  # helpers are found and simply register nothing
    assert set(model_names()) >= expected and "base" not in model_names()


def test_help_imports_no_model_code():
    # The registries import their modules only when a name is asked for, so `momentloc --help` stays fast.
    code = ("import sys; from typer.testing import CliRunner; from momentloc.cli import app; "
            "assert CliRunner().invoke(app, ['--help']).exit_code == 0; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('momentloc.models', 'momentloc.registry'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown model 'spn'; known: fsan, prior, sg_sci, snag, span"):
        get_model_class("spn")
    with pytest.raises(KeyError, match=r"unknown objective 'ssc'; known: cross_scale, sscs, within_scale"):
        registry.get_objective("ssc")


def test_a_model_must_declare_a_known_supervision(monkeypatch):
    monkeypatch.setattr(registry.MODELS, "entries", dict(registry.MODELS.entries))

    class Odd(GroundingModel):
        supervision = "partial"

    class Silent(GroundingModel):  # inherits no default: a model says which labels it learns from
        pass

    with pytest.raises(ValueError, match=r"model 'odd': supervision must be one of \('full', 'weak', 'point'\), "
                                         r"got 'partial'"):
        registry.register_model("odd")(Odd)
    with pytest.raises(ValueError, match=r"model 'silent': supervision must be one of .*, got None"):
        registry.register_model("silent")(Silent)
    assert "odd" not in registry.MODELS.entries and "silent" not in registry.MODELS.entries


@pytest.mark.parametrize("name", model_names())
def test_every_model_ships_a_ci_config_of_its_own(name):
    cfg = load_config(CONFIGS / f"{ci_config_name(name)}.yaml")
    assert cfg.model.name == name


@pytest.mark.parametrize("name", model_names())
def test_every_model_is_documented(name):
    assert f"| `{name}`" in (DOCS / "methods.md").read_text(encoding="utf-8")


@pytest.fixture
def added_model(tmp_path, monkeypatch) -> Path:
    """A folder with ``tiny_weak.py`` and its CI config, on ``momentloc.models.__path__`` for this test."""
    (tmp_path / "tiny_weak.py").write_text(TINY_MODEL, encoding="utf-8")
    (tmp_path / "tiny_weak_synthetic_ci.yaml").write_text(_tiny_config(CONFIGS.parent / "data" / "synthetic_ci.yaml"))
    monkeypatch.setattr(momentloc.models, "__path__", [*momentloc.models.__path__, str(tmp_path)])
    monkeypatch.setattr(registry.MODELS, "entries", dict(registry.MODELS.entries))
    yield tmp_path
    sys.modules.pop("momentloc.models.tiny_weak", None)


def test_an_added_model_is_listed_and_built_from_its_config(added_model):
    assert "momentloc.models.tiny_weak" in registry.MODELS.modules()
    assert "tiny_weak" in model_names() and "tiny_weak" in registry.models_by_supervision("weak")
    cfg = load_config(added_model / "tiny_weak_synthetic_ci.yaml")
    model = build_model(cfg, InputSpec(video_dim=cfg.data.feature_dim, text_dim=cfg.data.text.dim, vocab_size=10,
                                       num_clips=None))
    assert type(model).__name__ == "TinyWeak" and model.video.out_features == 8


PLUGIN = '''
"""Adds the folder named in MOMENTLOC_TEST_MODELS to where models and their configs are found."""
import os
from pathlib import Path

import _models
import momentloc.models

folder = os.environ["MOMENTLOC_TEST_MODELS"]
momentloc.models.__path__.append(folder)
_models.CONFIG_FOLDERS.append(Path(folder))
'''


def test_an_added_model_goes_through_the_contracts_unnamed(added_model):
    # A fresh pytest run collects the contract tests with the model's folder on the path, as if it were shipped.
    (added_model / "add_tiny_model.py").write_text(PLUGIN, encoding="utf-8")
    env = {**os.environ, "MOMENTLOC_TEST_MODELS": str(added_model),
           "PYTHONPATH": os.pathsep.join([str(added_model), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    files = ["test_weak_contract.py", "test_inference_contract.py", "test_host_reads.py"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "add_tiny_model", "-p", "no:cacheprovider", "-q",
                           "-rA", "-k", "tiny_weak", *(str(TESTS / f) for f in files)],
                          capture_output=True, text=True, env=env, cwd=TESTS.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    passed = [line for line in done.stdout.splitlines() if line.startswith("PASSED") and "tiny_weak" in line]
    assert len(passed) == 6, done.stdout[-3000:]  # 3 weak-contract checks, 1 inference, 2 host-read
    assert {line.split("::")[0].split()[-1].rsplit("/", 1)[-1] for line in passed} == set(files)


def test_the_contracts_look_configs_up_in_order(added_model, monkeypatch):
    import _models

    monkeypatch.setattr(_models, "CONFIG_FOLDERS", [CONFIGS, added_model])
    assert config_path("span_synthetic_ci") == CONFIGS / "span_synthetic_ci.yaml"
    assert config_path("tiny_weak_synthetic_ci") == added_model / "tiny_weak_synthetic_ci.yaml"
    with pytest.raises(FileNotFoundError, match="no experiment config nothing.yaml"):
        config_path("nothing")
