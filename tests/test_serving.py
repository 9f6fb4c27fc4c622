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
ONE_STEP = ("train.epochs=1", "train.limit_train_batches=1", "train.batch_size=8")
# Every step of clip preparation switched on: a fixed clip count, or a cap below the longer videos (20 to 45
# clips), and per-clip normalisation.
PREPARED = [("data.num_clips=12", "data.normalize_features=true"), ("data.max_clips=30", "data.normalize_features=true")]
CASES = [(name, ()) for name in model_names()] + [("span", extra) for extra in PREPARED]

Case = tuple[str, tuple[str, ...]]


def _case_id(case: Case) -> str:
    """A model name with its overrides, usable as a folder name."""
    return "-".join([case[0], *case[1]]).replace("=", "_")


def _train_one_step(case: Case, root: Path, out: Path) -> Path:
    """The checkpoint of ``<model>_synthetic_ci`` (with the case's overrides) after one step on the tiny synthetic set."""
    from momentloc.training import train

    model, extra = case
    runs = out / _case_id(case)  # a run folder per case
    cfg = load_config(CONFIGS / f"{model}_synthetic_ci.yaml", [*tiny_overrides(root, runs), *ONE_STEP, *extra])
    return train(cfg).checkpoint


@pytest.fixture(scope="module")
def checkpoints(tiny_synth: Path, tmp_path_factory) -> dict[Case, Path]:
    """One one-step checkpoint per case, trained on first use."""
    out = tmp_path_factory.mktemp("serving_runs")

    class Trained(dict):
        def __missing__(self, case: Case) -> Path:
            self[case] = _train_one_step(case, tiny_synth, out)
            return self[case]

    return Trained()


def _written(path: Path) -> list[dict]:
    """The rows of a predictions jsonl file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _as_written(moments: list) -> list[list[float]]:
    """Moments as ``eval --predictions`` writes them: [start, end, score], each gathered as a float32."""
    return [[float(np.float32(v)) for v in m.as_list()] for m in moments]


@pytest.mark.parametrize("case", CASES, ids=lambda c: _case_id(c))
def test_predictor_answers_what_eval_writes(case: Case, checkpoints: dict[Case, Path], tmp_path: Path, capsys) -> None:
    """Every registered model: ``Predictor.localize`` on each test video gives exactly the moments that
    ``momentloc eval --predictions`` writes for the same (video, query) pairs.

    Both run one query per forward pass: batched matrix products round differently with the batch's shape
    (a few float32 ulps), which says nothing about the features, words and decoding the two paths share.
    """
    model = case[0]
    from momentloc.data.features import FeatureStore
    from momentloc.data.sources import feature_path, split_pairs
    from momentloc.predict import Predictor

    ckpt, written = checkpoints[case], tmp_path / "predictions.jsonl"
    done = run_cli(capsys, ["eval", ckpt, "--split", "test", "--predictions", written,
                            "--set", f"train.out_dir={tmp_path}", "--set", "train.eval_batch_size=1"])
    assert done.code == 0, done.err
    rows = _written(written)
    pred = Predictor.from_checkpoint(ckpt, device="cpu")
    pairs = split_pairs(pred.cfg.data, "test", seed=pred.cfg.train.seed)
    assert [r["query"] for r in rows] == [p.query for p in pairs]
    store = FeatureStore(feature_path(pred.cfg.data))
    top_k = max(len(r["pred_relevant_windows"]) for r in rows)  # the k that evaluation ranks
    by_video: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_video.setdefault(p.video_id, []).append(i)
    for video_id, rows_of_video in by_video.items():
        enc = pred.encode_video(store.get(video_id), duration=pairs[rows_of_video[0]].duration)
        answers = pred.localize(enc, [pairs[i].query for i in rows_of_video], top_k=top_k, batch_size=1)
        for i, moments in zip(rows_of_video, answers):
            assert moments, f"{model}: no moment for pair {i}"
            assert _as_written(moments) == rows[i]["pred_relevant_windows"], f"{model}: pair {i} ({video_id})"


def test_prediction_loads_without_the_trainer(checkpoints: dict[Case, Path]) -> None:
    """Loading a checkpoint and localizing with it (and the web server's module, where its extra is installed)
    imports neither momentloc.training nor Lightning."""
    script = (
        "import importlib.util, sys, numpy as np\n"
        "if importlib.util.find_spec('fastapi'):\n"
        "    import momentloc.server.app\n"
        "from momentloc.predict import Predictor\n"
        f"pred = Predictor.from_checkpoint({str(checkpoints[('span', ())])!r}, device='cpu')\n"
        "moments = pred.localize(np.ones((20, 16), np.float32), 'a person opens the door', duration=10.0)\n"
        "assert moments and moments[0], moments\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')"
        " or m in ('momentloc.training', 'momentloc.eval_run')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name, home", [("module_from_checkpoint", "momentloc.restore"),
                                        ("evaluate_checkpoint", "momentloc.eval_run"),
                                        ("schedule_factor", "momentloc.optim")])
def test_names_moved_out_of_training_still_work_and_say_where(name: str, home: str) -> None:
    import importlib

    import momentloc.training as training

    with pytest.warns(DeprecationWarning, match=f"moved to {home}.{name}"):
        found = getattr(training, name)
    assert found is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        training.not_a_name  # noqa: B018
