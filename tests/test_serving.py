"""Serving against evaluation: a checkpoint loads for prediction without the trainer, and ``Predictor.localize``
answers exactly the moments ``momentloc eval --predictions`` writes, for every registered model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import CONFIGS
from clirun import run_cli
from conftest import tiny_overrides

from momentloc.config import load_config
from momentloc.registry import model_names

# One step of training: enough to write a checkpoint whose weights are not the initial ones.
ONE_STEP = ["train.epochs=1", "train.limit_train_batches=1", "train.batch_size=8"]


def _train_one_step(model: str, root: Path, out: Path) -> Path:
    """The checkpoint of ``<model>_synthetic_ci`` after one optimiser step on the tiny synthetic set."""
    from momentloc.training import train

    cfg = load_config(CONFIGS / f"{model}_synthetic_ci.yaml", tiny_overrides(root, out) + ONE_STEP)
    return train(cfg).checkpoint


@pytest.fixture(scope="module")
def checkpoints(tiny_synth: Path, tmp_path_factory) -> dict[str, Path]:
    """One one-step checkpoint per registered model, trained on first use."""
    out = tmp_path_factory.mktemp("serving_runs")
    made: dict[str, Path] = {}

    class Lazy(dict):
        def __missing__(self, model: str) -> Path:
            made[model] = _train_one_step(model, tiny_synth, out)
            return made[model]

    return Lazy()


def test_prediction_loads_without_the_trainer(checkpoints: dict[str, Path], tiny_synth: Path) -> None:
    """Loading a checkpoint and localizing with it imports neither momentloc.training nor Lightning."""
    script = (
        "import sys, numpy as np\n"
        "from momentloc.predict import Predictor\n"
        f"pred = Predictor.from_checkpoint({str(checkpoints['span'])!r}, device='cpu')\n"
        "moments = pred.localize(np.ones((20, 16), np.float32), 'a person opens the door', duration=10.0)\n"
        "assert moments and moments[0], moments\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')"
        " or m in ('momentloc.training', 'momentloc.eval_run')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
