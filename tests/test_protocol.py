"""One protocol per dataset: the headline metric selects the checkpoint, the eval: block changes what is computed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clirun import run_cli
from conftest import tiny_overrides
from momentloc.config import load_config, validate
from momentloc.config_files import experiment_config
from momentloc.errors import ConfigError
from momentloc.metrics.protocol import DIDEMO, MOMENTS, QVHIGHLIGHTS, config_protocol, dataset_protocol
from momentloc.training import train
from momentloc.types import Moment, Pair

# Two DiDeMo queries: 4 annotators each, chunk-aligned windows in seconds.
DIDEMO_PAIRS = [
    Pair("v0", 30.0, "a dog runs", ((5.0, 10.0),), query_id="0",
         annotator_windows=((5.0, 10.0), (5.0, 10.0), (5.0, 10.0), (0.0, 5.0))),
    Pair("v1", 25.0, "a cat sits", ((10.0, 20.0),), query_id="1",
         annotator_windows=((10.0, 20.0), (10.0, 20.0), (10.0, 15.0), (10.0, 20.0))),
]


def test_each_dataset_has_its_headline() -> None:
    assert dataset_protocol("didemo") == DIDEMO and DIDEMO.monitor_key == "val/Rank@1"
    assert dataset_protocol("qvh") == QVHIGHLIGHTS and QVHIGHLIGHTS.monitor_key == "val/mAP"
    for name in ("charades_sta", "tacos", "activitynet", "synthetic_ci", "charades_sim", "a dataset of one's own"):
        assert dataset_protocol(name).monitor_key == "val/R1@0.5"


def test_didemo_scores_moments_with_its_ranks() -> None:
    # Query 0: top-1 chunk 1 = three annotators' choice -> rank 1; query 1: top-1 chunks 2-3 -> rank 1.
    moments = [[Moment(5.0, 10.0, 0.9), Moment(0.0, 5.0, 0.5)], [Moment(10.0, 20.0, 0.8)]]
    m = DIDEMO.score(DIDEMO_PAIRS, moments)
    assert set(m) == {"Rank@1", "Rank@5", "mIoU", "n"}
    assert m["Rank@1"] == 100.0 and m["Rank@5"] == 100.0
    # Query 1's best three annotators' IoUs with chunks 2-3: 1, 1, 1 (the fourth, chunk 2 alone, is 1/2).
    assert m["mIoU"] == pytest.approx(100.0)
    wrong = [[Moment(20.0, 30.0, 0.9)], [Moment(0.0, 5.0, 0.9)]]
    assert DIDEMO.score(DIDEMO_PAIRS, wrong)["Rank@1"] == 0.0


def test_dropping_the_headline_threshold_still_reports_the_monitor() -> None:
    pairs = [Pair("a", 20.0, "x", ((0.0, 10.0),)), Pair("b", 20.0, "y", ((10.0, 20.0),))]
    moments = [[Moment(0.0, 8.0, 1.0)], [Moment(0.0, 10.0, 1.0)]]  # IoU 0.8 and 0
    protocol = MOMENTS.with_options(ks=[1], iou_thresholds=[0.3, 0.7])
    m = protocol.score(pairs, moments, breakdowns=False)
    assert set(m) == {"R1@0.3", "R1@0.7", "R1@0.5", "mIoU", "n"}  # R1@0.5: the monitor, computed too
    assert (m["R1@0.3"], m["R1@0.5"], m["R1@0.7"]) == (50.0, 50.0, 50.0)
    assert MOMENTS.with_options(monitor="val/R5@0.9").monitored == "R5@0.9"
    assert (MOMENTS.decode_k, MOMENTS.with_options(ks=[1, 10]).decode_k, QVHIGHLIGHTS.decode_k) == (5, 10, 10)


@pytest.mark.parametrize(
    "dataset,block,message",
    [
        ("didemo", {"monitor": "R1@0.5"}, "'R1@0.5' is not a metric of the didemo protocol; expected one of Rank@1"),
        ("charades_sta", {"monitor": "recall"}, "'recall' is not a metric of the moments protocol"),
        ("qvhighlights", {"monitor": "HL-mAP"}, "'HL-mAP' is not a metric of the qvhighlights protocol"),
        ("tacos", {"ks": [0]}, "key 'eval.ks.0'"),
        ("tacos", {"iou_thresholds": [1.5]}, "key 'eval.iou_thresholds.0'"),
    ],
)
def test_a_bad_eval_block_is_one_line(dataset: str, block: dict, message: str) -> None:
    raw = {"data": {"dataset": dataset, "feature_dim": 8}, "model": {"name": "span"}, "eval": block}
    with pytest.raises(ConfigError, match=message) as err:
        validate(raw, "exp.yaml")
    assert str(err.value).startswith("exp.yaml: ") and "\n" not in str(err.value)


def test_train_monitor_is_still_honoured() -> None:
    raw = {"data": {"dataset": "tacos", "feature_dim": 8}, "model": {"name": "span"}}
    assert config_protocol(validate({**raw, "train": {"monitor": "val/R1@0.7"}})).monitor_key == "val/R1@0.7"
    # The former default, which older DiDeMo checkpoints carry, gives way to DiDeMo's headline.
    didemo = {**raw, "data": {"dataset": "didemo", "feature_dim": 8}, "train": {"monitor": "val/R1@0.5"}}
    assert config_protocol(validate(didemo)).monitor_key == "val/Rank@1"
    with pytest.raises(ConfigError, match="train.monitor .* and eval.monitor .* differ"):
        validate({**raw, "train": {"monitor": "val/R1@0.7"}, "eval": {"monitor": "R1@0.3"}})


def test_bad_monitor_from_the_command_line_is_one_line(capsys, tmp_path: Path) -> None:
    res = run_cli(capsys, ["train", "span_synthetic_ci", "--set", "eval.monitor=R9", "--set", f"train.out_dir={tmp_path}"])
    assert res.code != 0 and len(res.err_lines) == 1
    assert "eval.monitor: 'R9' is not a metric of the moments protocol" in res.err_lines[0]


# ------------------------------------------------------------------ training selects on the protocol


def _monitors(ckpt: Path) -> list[str]:
    """The monitors of the ModelCheckpoint callbacks a checkpoint records (Lightning keys their state by them)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["callbacks"]
    return [k.split("'monitor': ", 1)[1].split(",", 1)[0] for k in state if k.startswith("ModelCheckpoint")]


def _didemo_folder(root: Path, dim: int = 8) -> Path:
    """A tiny DiDeMo folder in the release format (val/test files) and an .npz feature store of its videos."""
    rng = np.random.default_rng(0)
    for split, n in (("val", 24), ("test", 8)):
        rows = []
        for i in range(n):
            chunks = int(rng.integers(4, 7))
            a = int(rng.integers(0, chunks))
            b = int(rng.integers(a, chunks))
            rows.append({"annotation_id": len(rows) + (0 if split == "val" else 1000), "video": f"{split}{i}.mp4",
                         "description": "a person walks to the door", "num_segments": chunks,
                         "times": [[a, b], [a, b], [a, b], [0, 0]]})
        (root / f"{split}_data.json").write_text(json.dumps(rows))
    videos = {f"{s}{i}.mp4": rng.normal(size=(6, dim)).astype("float32") for s, n in (("val", 24), ("test", 8))
              for i in range(n)}
    np.savez(root / "features.npz", **videos)
    return root


def test_a_didemo_run_selects_on_rank1_and_eval_prints_its_table(capsys, tmp_path: Path) -> None:
    root = _didemo_folder(tmp_path)
    cfg = load_config(experiment_config("span_synthetic_ci"), [
        "data.dataset=didemo", f"data.annotations={root}", f"data.features={root / 'features.npz'}",
        "data.feature_dim=8", "data.num_clips=6", "data.train_split=val", "data.val_split=test",
        "data.text.kind=hash", "data.text.dim=8", "train.epochs=1", "train.progress=false",
        f"train.out_dir={tmp_path / 'runs'}", "name=didemo_tiny",
    ])
    result = train(cfg)
    assert set(result.metrics) == {"Rank@1", "Rank@5", "mIoU", "n"}
    assert result.best_checkpoint is not None and _monitors(result.best_checkpoint) == ["'val/Rank@1'", "None"]
    res = run_cli(capsys, ["eval", result.best_checkpoint, "--split", "test", "--out", tmp_path / "m.json"])
    assert res.code == 0, res.err
    assert res.out.split("\n")[0].split() == ["Rank@1", "Rank@5", "mIoU", "n"]
    assert set(json.loads((tmp_path / "m.json").read_text())) == {"Rank@1", "Rank@5", "mIoU", "n"}


def test_the_eval_block_changes_what_validation_computes(tiny_synth: Path, tmp_path: Path) -> None:
    sets = [*tiny_overrides(tiny_synth, tmp_path), "train.epochs=1", "eval.ks=[1]", "eval.iou_thresholds=[0.3]",
            "eval.monitor=R1@0.3"]
    result = train(load_config(experiment_config("span_synthetic_ci"), sets))
    assert set(result.metrics) == {"R1@0.3", "mIoU", "n"}
    assert _monitors(result.best_checkpoint) == ["'val/R1@0.3'", "None"]  # best, and last (every epoch)
