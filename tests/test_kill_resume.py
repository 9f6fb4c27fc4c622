"""A training process killed with SIGKILL mid-run resumes to the same weights as an uninterrupted run."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import tiny_overrides

from momentloc.checkpoint import load_checkpoint
from momentloc.config import load_config
from momentloc.training import train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "experiment" / "span_synthetic_ci.yaml"


def _cmd(sets: list[str], resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "momentloc", "train", str(CONFIG)]
    for s in sets:
        cmd += ["--set", s]
    return cmd + (["--resume", "last"] if resume else [])


def _env() -> dict:
    # The same single thread as this process (conftest), so float sums agree bit for bit.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_sigkill_then_resume_matches_uninterrupted(tiny_synth, tmp_path):
    sets = tiny_overrides(tiny_synth, tmp_path) + ["train.epochs=4", "train.batch_size=4", "name=killed"]
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(_cmd(sets, False), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert last.exists(), "no checkpoint appeared before the deadline"
    time.sleep(0.3)  # into the next epoch
    killed_mid_run = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The checkpoint left behind is complete (atomic rename), whatever the kill hit.
    load_checkpoint(last)
    done = subprocess.run(_cmd(sets, True), capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]

    straight = train(load_config(CONFIG, tiny_overrides(tiny_synth, tmp_path) + ["train.epochs=4", "train.batch_size=4", "name=straight"]))
    a = load_checkpoint(straight.checkpoint)
    b = load_checkpoint(last)
    assert a["global_step"] == b["global_step"]
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], msg=k)
    assert killed_mid_run
    # The resumed run's metrics log holds every epoch, those before the kill included, once each.
    assert _val_epochs(tmp_path / "killed") == _val_epochs(tmp_path / "straight") == [0, 1, 2, 3]


def _val_epochs(run: Path) -> list[int]:
    """The epochs of a run's metrics.csv that carry a validation row."""
    with open(run / "logs" / "metrics.csv", newline="") as fh:
        return sorted(int(float(r["epoch"])) for r in csv.DictReader(fh) if r.get("val/R1@0.5"))
