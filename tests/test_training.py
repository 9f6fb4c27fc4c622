"""The training loop end to end: train, checkpoint, reload, evaluate, resume, errors, DDP evaluation."""

import json
import re
import subprocess
import sys

import pytest
import torch
from _helpers import CONFIGS
from conftest import tiny_overrides

from momentloc.checkpoint import load_checkpoint
from momentloc.config import load_config
from momentloc.errors import CheckpointError
from momentloc.eval_run import evaluate_checkpoint
from momentloc.loss_watch import NonFiniteLossError
from momentloc.restore import module_from_checkpoint
from momentloc.training import train


@pytest.fixture(scope="module")
def trained(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(CONFIGS / "span_synthetic_ci.yaml", tiny_overrides(tiny_synth, out) + ["train.epochs=2"])
    return train(cfg), out


def test_checkpoint_carries_config_vocab_and_spec(trained):
    result, _ = trained
    ckpt = load_checkpoint(result.checkpoint)
    meta = ckpt["momentloc"]
    assert meta["model"] == "span" and meta["supervision"] == "full"
    assert meta["config"]["data"]["feature_dim"] == 16
    assert meta["vocab"]["words"][:2] == ["<pad>", "<unk>"]
    assert meta["spec"]["video_dim"] == 16


def test_reload_gives_identical_outputs(trained, tiny_synth):
    result, out = trained
    a = module_from_checkpoint(result.checkpoint).eval()
    b = module_from_checkpoint(result.checkpoint).eval()
    from momentloc.data.random_batch import random_batch

    batch = random_batch(3, 20, 16, num_words=5, text_dim=24, vocab_size=len(a.vocab))
    with torch.no_grad():
        oa, ob = a.model(batch), b.model(batch)
    torch.testing.assert_close(oa["start"], ob["start"])
    m1, preds, pairs = evaluate_checkpoint(result.checkpoint, "test", [f"train.out_dir={out}"])
    m2, _, _ = evaluate_checkpoint(result.checkpoint, "test", [f"train.out_dir={out}"])
    assert json.dumps(m1, sort_keys=True) == json.dumps(m2, sort_keys=True)
    assert len(preds) == len(pairs) == m1["n"]


def test_truncated_and_foreign_checkpoints_are_refused(trained, tmp_path):
    result, _ = trained
    data = result.checkpoint.read_bytes()
    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.ckpt"):
        load_checkpoint(bad)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not a momentloc checkpoint"):
        load_checkpoint(other)


def test_resume_reaches_the_same_weights(tiny_synth, tmp_path):
    base = tiny_overrides(tiny_synth, tmp_path) + ["train.epochs=2", "train.batch_size=16"]
    straight = train(load_config(CONFIGS / "span_synthetic_ci.yaml", base + ["name=straight"]))
    first = train(load_config(CONFIGS / "span_synthetic_ci.yaml", base + ["name=split", "train.epochs=1"]))
    resumed = train(load_config(CONFIGS / "span_synthetic_ci.yaml", base + ["name=split"]), resume=str(first.checkpoint))
    a = load_checkpoint(straight.checkpoint)["state_dict"]
    b = load_checkpoint(resumed.checkpoint)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_non_finite_loss_names_the_step(tiny_synth, tmp_path):
    cfg = load_config(CONFIGS / "span_synthetic_ci.yaml", tiny_overrides(tiny_synth, tmp_path) + ["optim.lr=1e30", "optim.name=sgd"])
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss .* at step \d+"):
        train(cfg)


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def test_two_process_evaluation_equals_one(trained, tmp_path):
    result, out = trained
    outs = {}
    for n in (1, 2):
        path = tmp_path / f"m{n}.json"
        cmd = [sys.executable, "-m", "momentloc", "eval", str(result.checkpoint), "--split", "test", "--devices", str(n),
               "--set", "train.accelerator=cpu", "--set", f"train.strategy={'ddp' if n > 1 else 'auto'}",
               "--set", f"train.out_dir={out}", "--set", "train.eval_batch_size=5", "--out", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs[n] = json.dumps(json.loads(path.read_text(), parse_constant=_not_json), sort_keys=True)
        assert re.search(r"^\d+ queries in [\d.]+ s \(\d+ queries/s", proc.stdout, re.M), proc.stdout[-500:]
    assert outs[1] == outs[2]
    assert json.loads(outs[1])["n"] > 0


def test_span_model_learns_the_ci_benchmark(ci_synth, tmp_path):
    common = [f"data.annotations={ci_synth}", f"train.out_dir={tmp_path}", "train.progress=false"]
    prior = train(load_config(CONFIGS / "prior_synthetic_ci.yaml", common))
    span = train(load_config(CONFIGS / "span_synthetic_ci.yaml", common + ["train.epochs=5"]))
    assert prior.metrics["R1@0.5"] < 25.0
    assert span.metrics["R1@0.5"] >= 2 * prior.metrics["R1@0.5"], (span.metrics, prior.metrics)
