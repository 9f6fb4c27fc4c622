"""Files that would run code when unpickled (checkpoints, encoder weights, feature stores) are refused, and the
code does not run. The GloVe-pickle case is in test_text.py."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import assert_one_line_error, run_cli
from conftest import tiny_overrides

from momentloc.checkpoint import FORMAT, load_checkpoint
from momentloc.errors import CheckpointError, DataError

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "experiment" / "span_synthetic_ci.yaml"


class RunsCode:
    """Unpickling this calls os.system(command): the classic malicious-pickle payload."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file the payload would create; it must never exist."""
    return tmp_path / "code-ran"


@pytest.fixture
def evil_ckpts(tmp_path: Path, marker: Path) -> dict[str, Path]:
    """A torch zip checkpoint and a bare pickle, both shaped like ours, both carrying the payload."""
    payload = RunsCode(f"touch {marker}")
    body = {"momentloc": {"format": FORMAT, "config": {}, "vocab": payload}, "state_dict": {}}
    zipped = tmp_path / "evil.ckpt"
    torch.save(body, zipped)
    bare = tmp_path / "evil_bare.ckpt"
    bare.write_bytes(pickle.dumps(body))
    assert not marker.exists()
    return {"zip": zipped, "bare": bare}


@pytest.mark.parametrize("kind", ["zip", "bare"])
def test_load_checkpoint_refuses_code(evil_ckpts, marker: Path, kind: str) -> None:
    with pytest.raises(CheckpointError, match=r"evil(_bare)?\.ckpt: refused to load: its pickle asks for more than tensors"):
        load_checkpoint(evil_ckpts[kind])
    assert not marker.exists()


def test_the_refusal_names_the_global_and_gives_no_unsafe_advice(evil_ckpts) -> None:
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(evil_ckpts["zip"])
    message = str(err.value)
    assert "system" in message and "\n" not in message
    assert "weights_only" not in message and "trusted source" not in message


@pytest.mark.parametrize("command", ["eval", "predict", "resume"])
def test_cli_refuses_code_in_one_line(capsys, evil_ckpts, marker: Path, tmp_path: Path, tiny_synth: Path,
                                      command: str) -> None:
    ckpt = evil_ckpts["zip"]
    if command == "eval":
        args = ["eval", ckpt]
    elif command == "predict":
        np.save(tmp_path / "f.npy", np.zeros((4, 16), np.float32))
        args = ["predict", "--checkpoint", ckpt, "--query", "a person", "--features", tmp_path / "f.npy", "--duration", 4]
    else:
        sets = [a for s in tiny_overrides(tiny_synth, tmp_path / "runs") for a in ("--set", s)]
        args = ["train", CONFIG, *sets, "--resume", ckpt]
    assert_one_line_error(run_cli(capsys, args), "evil.ckpt: refused to load")
    assert not marker.exists()


def test_encoder_weights_with_code_are_refused(capsys, tmp_path: Path, marker: Path) -> None:
    pytest.importorskip("av", reason="PyAV is the [video] extra")
    weights = tmp_path / "tiny.pt"
    torch.save({"kind": "momentloc-tiny-encoder", "dim": 8, "seed": 0, "state_dict": RunsCode(f"touch {marker}")}, weights)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"unused")
    res = run_cli(capsys, ["extract", video, "--out", tmp_path / "store", "--weights", weights])
    assert_one_line_error(res, "tiny.pt: not a tiny-encoder weights file")
    assert not marker.exists()


def test_feature_store_with_pickled_objects_is_refused(tmp_path: Path, marker: Path) -> None:
    from momentloc.data.features import FeatureStore

    obj = np.empty(1, dtype=object)
    obj[0] = RunsCode(f"touch {marker}")
    np.savez(tmp_path / "f.npz", v=obj)
    with pytest.raises(DataError, match=r"f\.npz:key v: cannot read as a float array \[T, D\] \(Object arrays cannot be loaded"):
        FeatureStore(tmp_path / "f.npz").get("v")
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "v.npy", obj, allow_pickle=True)
    with pytest.raises(DataError, match=r"npy:key v: cannot read as a float array"):
        FeatureStore(tmp_path / "npy").get("v")
    assert not marker.exists()
