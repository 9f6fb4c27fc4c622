"""A corpus of bad inputs through the `momentloc` command: each stops with one line that names the file, the
line or key, and what was expected (exit 2, no traceback), or is skipped and reported when asked to skip."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from clirun import assert_one_line_error, run_cli
from conftest import tiny_overrides

from momentloc.checkpoint import atomic_save, load_checkpoint
from momentloc.config import load_config
from momentloc.training import GroundingModule, train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "experiment" / "span_synthetic_ci.yaml"
FAST = ["train.epochs=1", "model.params.hidden=16"]


def sets(items: list[str]) -> list[str]:
    """``--set`` options for each override."""
    return [arg for item in items for arg in ("--set", item)]


def train_args(root: Path, out: Path, *extra: str) -> list[str]:
    """`momentloc train` on the tiny synthetic benchmark, one epoch of a small span model."""
    return ["train", str(CONFIG), *sets(tiny_overrides(root, out) + FAST + list(extra))]


def first_train_video(root: Path) -> str:
    """A video id of the train split (a corrupted entry of it is read in the first epoch)."""
    return next(iter(json.loads((root / "train.json").read_text())))


# ---- annotations: `momentloc data stats --root` over a folder laid out like the dataset -------------------


@pytest.fixture
def charades_root(tmp_path: Path) -> Path:
    """A Charades-STA folder whose csv gives video V1 a length of 10 s."""
    root = tmp_path / "charades_sta"
    root.mkdir()
    (root / "Charades_v1_train.csv").write_text("id,length\nV1,10.0\n")
    return root


@pytest.mark.parametrize(
    "row, expected",
    [
        (b"V1 1.0##a person sits.", "expected 'VID START END' before '##'"),  # a missing field
        (b"V1 abc 2.0##a person sits.", "start: expected a number, got 'abc'"),
        (b"V1 1.0 inf##a person sits.", "end: expected a finite number"),
        (b"V1 -1.0 2.0##a person sits.", "window [-1, 2]: negative time"),
        (b"V1 5.0 3.0##a person sits.", "window [5, 3]: end before start"),
        (b"V1 1.0 12.5##a person sits.", "ends 2.5 s past the video duration 10 s"),
        (b"V1 1.0 2.0##   ", "sentence: empty"),
        (b"V1 1.0 2.0##a caf\xe9 scene.", "not UTF-8: byte 0xe9"),
    ],
)
def test_bad_charades_rows(capsys, charades_root: Path, row: bytes, expected: str) -> None:
    (charades_root / "charades_sta_train.txt").write_bytes(b"V1 0.0 3.0##a person stands.\n" + row + b"\n")
    res = run_cli(capsys, ["data", "stats", "charades_sta", "--split", "train", "--root", charades_root])
    assert_one_line_error(res, "charades_sta_train.txt:line 2: ", expected)


GOOD = {"duration": 10, "timestamps": [[0, 2]], "sentences": ["a person sits."]}


@pytest.mark.parametrize(
    "text, where, expected",
    [
        ('{"v1": %s, "v1": %s}' % (json.dumps(GOOD), json.dumps(GOOD)), "key 'v1'", "duplicate key"),
        ('{"v1": {"duration": 10, "timestamps": [[0, 2]]}}', "key 'v1'", "missing field 'sentences'"),
        ('{"v1": {"duration": 10, "timestamps": [["0", 2]], "sentences": ["a"]}}', "key 'v1' item 0",
         "start: expected a number, got '0'"),
        ('{"v1": {"duration": -10, "timestamps": [[0, 2]], "sentences": ["a"]}}', "key 'v1'",
         "duration: expected a positive number"),
        ('{"v1": {"duration": 10, "timestamps": [[0, 2]], "sentences": [17]}}', "key 'v1' item 0",
         "sentence: expected a string"),
        ('{"v1": {"duration": 10,\n "timestamps": [[0, 2]]', "line 2", "invalid JSON"),
    ],
)
def test_bad_activitynet_entries(capsys, tmp_path: Path, text: str, where: str, expected: str) -> None:
    (tmp_path / "train.json").write_text(text)
    res = run_cli(capsys, ["data", "stats", "activitynet", "--split", "train", "--root", tmp_path])
    assert_one_line_error(res, f"train.json:{where}", expected)


def test_duplicate_query_id(capsys, tmp_path: Path) -> None:
    row = '{"qid": 7, "query": "a dog runs", "duration": 150, "vid": "x_0_150", "relevant_windows": [[0, 2]]}\n'
    (tmp_path / "highlight_val_release.jsonl").write_text(row + row)
    res = run_cli(capsys, ["data", "stats", "qvhighlights", "--split", "val", "--root", tmp_path])
    assert_one_line_error(res, "highlight_val_release.jsonl:line 2", "duplicate query id '7' (first at line 1")


def test_console_script_prints_one_line(tmp_path: Path) -> None:
    """The real process, not just main(): one stderr line, exit 2."""
    (tmp_path / "train.json").write_text('{"v1": {"duration": 10, "timestamps": [[0, 20]], "sentences": ["a"]}}')
    proc = subprocess.run([sys.executable, "-m", "momentloc", "data", "stats", "activitynet", "--root", str(tmp_path),
                           "--split", "train"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'train.json'}:key 'v1' item 0: window [0, 20] ends 10 s past the video duration 10 s "
        "(more than the 0.1 s tolerance)"
    ]


# ---- predictions files: `momentloc evaluate` --------------------------------------------------------------


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("p.jsonl", b'{"qid": 1, "pred_relevant_windows": [[0, 2, 1]]}\n{"qid": 2, "query": "caf\xff"}\n',
         "p.jsonl:line 2: not UTF-8: byte 0xff"),
        ("p.jsonl", b'{"qid": 1, "pred_saliency_scores": 5}\n', "p.jsonl:line 1: pred_saliency_scores must be a list"),
        ("p.jsonl", b'{"qid": 1, "segments": 5}\n', "p.jsonl:line 1: segments must be a list"),
        ("p.json", b'{"1": 5}', "p.json:key 1: a ranking must be a list, got 5"),
        ("p.csv", b"qid,start,end,score\n1,0,late,1\n", "p.csv:line 2: end must be a number, got 'late'"),
    ],
)
def test_bad_predictions_files(capsys, tmp_path: Path, name: str, data: bytes, expected: str) -> None:
    row = '{"qid": %d, "query": "a dog runs", "duration": 150, "vid": "x_0_150", "relevant_windows": [[0, 2]]}\n'
    (tmp_path / "highlight_val_release.jsonl").write_text(row % 1 + row % 2)
    (tmp_path / name).write_bytes(data)
    res = run_cli(capsys, ["evaluate", "--dataset", "qvhighlights", "--split", "val", "--predictions", tmp_path / name,
                           "--root", tmp_path])
    assert_one_line_error(res, expected)


# ---- feature stores: `momentloc train` on the tiny synthetic benchmark with a corrupted store -------------


def corrupt_store(src: Path, dst: Path, video: str, value: object) -> Path:
    """Copy an hdf5 store, replacing (or, for None, dropping) one video's entry."""
    with h5py.File(src, "r") as h, h5py.File(dst, "w") as out:
        for key in h:
            if key != video:
                out.create_dataset(key, data=h[key][()])
            elif value is not None:
                out.create_dataset(key, data=value)
    return dst


@pytest.mark.parametrize(
    "case, value, expected",
    [
        ("missing", None, "1 video(s) missing from the feature store: {vid}"),
        ("dim", np.zeros((5, 8), np.float32), "key {vid}: expected feature dimension 16, got 8"),
        ("nan", np.full((5, 16), np.nan, np.float32), "key {vid}: features contain NaN or infinite values"),
        ("inf", np.full((5, 16), np.inf, np.float32), "key {vid}: features contain NaN or infinite values"),
        ("empty", np.zeros((0, 16), np.float32), "key {vid}: zero-length feature sequence"),
        ("text", np.array([b"not", b"numbers"]), "key {vid}: cannot read as a float array"),
    ],
)
def test_bad_feature_store(capsys, tiny_synth: Path, tmp_path: Path, case: str, value: object, expected: str) -> None:
    vid = first_train_video(tiny_synth)
    store = corrupt_store(tiny_synth / "features.hdf5", tmp_path / f"{case}.hdf5", vid, value)
    res = run_cli(capsys, train_args(tiny_synth, tmp_path / "runs", f"data.features={store}"))
    assert_one_line_error(res, f"{case}.hdf5", expected.format(vid=vid))


def test_bad_features_read_in_a_loader_worker(capsys, tiny_synth: Path, tmp_path: Path) -> None:
    """torch re-raises a worker's error with its traceback in the message: still one line."""
    vid = first_train_video(tiny_synth)
    store = corrupt_store(tiny_synth / "features.hdf5", tmp_path / "nan.hdf5", vid, np.full((5, 16), np.nan, np.float32))
    res = run_cli(capsys, train_args(tiny_synth, tmp_path / "runs", f"data.features={store}", "train.num_workers=1"))
    assert_one_line_error(res, f"nan.hdf5:key {vid}: features contain NaN")


@pytest.mark.parametrize("name, data", [("cut.hdf5", "half"), ("notes.hdf5", b"just text"), ("notes.npz", b"just text")])
def test_unreadable_store_file(capsys, tiny_synth: Path, tmp_path: Path, name: str, data: object) -> None:
    raw = (tiny_synth / "features.hdf5").read_bytes()
    (tmp_path / name).write_bytes(raw[: len(raw) // 2] if data == "half" else data)
    res = run_cli(capsys, train_args(tiny_synth, tmp_path / "runs", f"data.features={tmp_path / name}"))
    assert_one_line_error(res, name, "cannot open as a")


# ---- configs: `momentloc train` -----------------------------------------------------------------------------


def test_mistyped_key_in_a_config_file(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"base: [{CONFIG}]\ntrain: {{epoch: 3}}\n")
    assert_one_line_error(run_cli(capsys, ["train", cfg]), "exp.yaml", "unknown key 'train.epoch'")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("optim.learning_rate=0.1", "unknown key 'optim.learning_rate'"),
        ("train.epochs=many", "key 'train.epochs': Input should be a valid integer"),
        ("model.params.hiden=8", "unknown key 'hiden'"),
        ("data.text.kind=word2vec", "key 'data.text.kind'"),
        ("train.epochs", "expected key=value"),
    ],
)
def test_bad_config_overrides(capsys, tiny_synth: Path, tmp_path: Path, override: str, expected: str) -> None:
    res = run_cli(capsys, train_args(tiny_synth, tmp_path / "runs", override))
    assert_one_line_error(res, expected)


def test_usage_errors_are_one_line_too(capsys, tmp_path: Path) -> None:
    assert_one_line_error(run_cli(capsys, ["trian"]), "No such command 'trian'")
    assert_one_line_error(run_cli(capsys, ["predict", "--query", "x"]), "Missing option '--checkpoint'")
    res = run_cli(capsys, ["data", "stats", "nosuch", "--root", tmp_path])
    assert_one_line_error(res, "unknown dataset 'nosuch'")


# ---- checkpoints and prediction -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ckpts(tiny_synth: Path, tmp_path_factory) -> dict[str, Path]:
    """A trained checkpoint, the same with a feature spec (tiny encoder at 2 fps), and broken variants."""
    from momentloc.video import TinyEncoder, attach_feature_spec

    base = tmp_path_factory.mktemp("bad_ckpts")
    result = train(load_config(CONFIG, tiny_overrides(tiny_synth, base / "runs") + FAST))
    good = result.checkpoint
    spec = base / "spec.ckpt"
    shutil.copy(good, spec)
    attach_feature_spec(spec, TinyEncoder(dim=16).spec(2.0))
    cut = base / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    wider = load_checkpoint(good)
    wider["momentloc"]["config"]["model"]["params"]["hidden"] = 32  # the weights are of hidden=16
    other = load_checkpoint(good)
    other["momentloc"]["config"]["model"] = {"name": "tan2d", "params": {}}  # span weights, 2D-TAN config
    feats = np.random.default_rng(0).standard_normal((20, 16)).astype(np.float32)
    np.save(base / "ok.npy", feats)
    return {"good": good, "spec": spec, "cut": cut, "wider": atomic_save(wider, base / "wider.ckpt"),
            "other": atomic_save(other, base / "other.ckpt"), "npy": base / "ok.npy", "runs": base / "runs"}


def predict_args(ckpt: Path, features: Path, *extra: object, query: str = "a person opens the door") -> list:
    """`momentloc predict` on a features file."""
    return ["predict", "--checkpoint", ckpt, "--query", query, "--features", features, *extra]


@pytest.mark.parametrize(
    "ckpt, expected",
    [
        ("cut", "cut.ckpt: not a readable momentloc checkpoint: truncated or not a torch file"),
        ("wider", "wider.ckpt: weights do not fit model 'span'"),
        ("other", "other.ckpt: weights do not fit model 'tan2d'"),
    ],
)
@pytest.mark.parametrize("command", ["eval", "predict"])
def test_unusable_checkpoints(capsys, ckpts, ckpt: str, expected: str, command: str) -> None:
    if command == "eval":
        args = ["eval", ckpts[ckpt], *sets([f"train.out_dir={ckpts['runs']}", "train.progress=false"])]
    else:
        args = predict_args(ckpts[ckpt], ckpts["npy"], "--duration", 10)
    assert_one_line_error(run_cli(capsys, args), expected)


def test_resume_from_a_truncated_checkpoint(capsys, ckpts, tiny_synth: Path, tmp_path: Path) -> None:
    res = run_cli(capsys, [*train_args(tiny_synth, tmp_path / "runs"), "--resume", ckpts["cut"]])
    assert_one_line_error(res, "cut.ckpt: not a readable momentloc checkpoint")


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.zeros((10, 8), np.float32), "features have dimension 8, but this checkpoint takes 16-dim features"),
        (np.full((10, 16), np.nan, np.float32), "features contain NaN or infinite values"),
        (np.full((10, 16), -np.inf, np.float32), "features contain NaN or infinite values"),
        (np.zeros((0, 16), np.float32), "zero-length feature sequence"),
        (np.zeros(16, np.float32), "expected a [T, D] array, got shape (16,)"),
        (np.array([{"a": 1}], dtype=object), "cannot read the .npy array (Object arrays cannot be loaded"),
        (b"plain text", "not a .npy file"),
    ],
)
def test_bad_features_file_for_predict(capsys, ckpts, tmp_path: Path, array: object, expected: str) -> None:
    path = tmp_path / "feats.npy"
    if isinstance(array, bytes):
        path.write_bytes(array)
    else:
        np.save(path, array, allow_pickle=True)
    res = run_cli(capsys, predict_args(ckpts["good"], path, "--duration", 10))
    assert_one_line_error(res, f"{path}: ", expected)


@pytest.mark.parametrize(
    "extra, query, expected",
    [
        (["--duration", 10], "zebra xylophone quokka", "query 'zebra xylophone quokka' has no known words"),
        (["--duration", 10], "!!! ...", "has no known words"),
        (["--duration", -3], "a person opens the door", "duration must be a positive number of seconds, got -3"),
        (["--duration", "nan"], "a person opens the door", "duration must be a positive number of seconds, got nan"),
        ([], "a person opens the door", "--features needs --duration"),
        (["--duration", 10, "--top-k", 0], "a person opens the door", "'--top-k'"),
    ],
)
def test_bad_queries_and_options_for_predict(capsys, ckpts, extra: list, query: str, expected: str) -> None:
    res = run_cli(capsys, predict_args(ckpts["good"], ckpts["npy"], *extra, query=query))
    assert_one_line_error(res, expected)


def test_predict_needs_a_query_and_a_readable_queries_file(capsys, ckpts, tmp_path: Path) -> None:
    base = ["predict", "--checkpoint", ckpts["good"], "--features", ckpts["npy"], "--duration", 10]
    assert_one_line_error(run_cli(capsys, base), "give at least one --query (or a --queries-file)")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert_one_line_error(run_cli(capsys, [*base, "--queries-file", empty]), "give at least one --query")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("a person\ncaf\xe9 door\n".encode("latin-1"))
    assert_one_line_error(run_cli(capsys, [*base, "--queries-file", latin]), f"{latin}:line 2: not UTF-8")
    missing = tmp_path / "nope.txt"
    assert_one_line_error(run_cli(capsys, [*base, "--queries-file", missing]), str(missing))


def test_good_predict_still_works(capsys, ckpts) -> None:
    res = run_cli(capsys, predict_args(ckpts["good"], ckpts["npy"], "--duration", 10, "--top-k", 2))
    assert res.code == 0 and res.err == "" and "start (s)" in res.out


def test_store_of_another_feature_spec_is_refused_by_eval(capsys, ckpts, tiny_synth: Path, tmp_path: Path) -> None:
    from momentloc.video import TinyEncoder

    store = tmp_path / "other.hdf5"
    shutil.copy(tiny_synth / "features.hdf5", store)
    (tmp_path / "other.hdf5.spec.json").write_text(json.dumps(TinyEncoder(dim=16, seed=1).spec(2.0).to_dict()))
    args = ["eval", ckpts["spec"], *sets([f"data.features={store}", f"train.out_dir={ckpts['runs']}", "train.progress=false"])]
    assert_one_line_error(run_cli(capsys, args), "spec.ckpt: trained on features of encoder 'tiny'", "other.hdf5 holds")


# ---- raw videos ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """A good clip, a text file named .mp4, and a WebM cut in half (it decodes without an error, but short)."""
    pytest.importorskip("av", reason="PyAV is the [video] extra")
    from momentloc.video import write_synthetic_video

    root = tmp_path_factory.mktemp("bad_videos")
    good = root / "good.webm"
    write_synthetic_video(good, [("red", 2.0), ("green", 2.0), ("blue", 2.0)], fps=10)
    fake = root / "notes.mp4"
    fake.write_text("this is not a video")
    cut = root / "cut.webm"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {"good": good, "fake": fake, "cut": cut}


@pytest.mark.parametrize("video, expected", [("fake", "cannot open as a video"), ("cut", "is the file truncated?")])
def test_predict_on_a_bad_video(capsys, ckpts, videos, video: str, expected: str) -> None:
    res = run_cli(capsys, ["predict", "--checkpoint", ckpts["spec"], "--query", "a person opens the door",
                           "--video", videos[video]])
    assert_one_line_error(res, f"{videos[video]}: ", expected)


def test_predict_with_another_encoder_is_refused(capsys, ckpts, videos, tmp_path: Path) -> None:
    from momentloc.video import TinyEncoder

    weights = TinyEncoder(dim=16, seed=1).save(tmp_path / "other.pt")
    res = run_cli(capsys, ["predict", "--checkpoint", ckpts["spec"], "--query", "a person opens the door",
                           "--video", videos["good"], "--weights", weights])
    assert_one_line_error(res, "trained on features of encoder 'tiny' (dim 16", "asked to use")


def test_extract_reports_bad_videos_and_does_the_rest(capsys, videos, tmp_path: Path) -> None:
    from momentloc.data.features import FeatureStore

    store = tmp_path / "store"
    res = run_cli(capsys, ["extract", videos["fake"], videos["good"], videos["cut"], "--out", store, "--fps", 2])
    assert res.code == 1 and "Traceback" not in res.out + res.err
    failed = [line for line in res.err_lines if line.startswith("failed: ")]
    assert len(failed) == 2, res.err
    assert "notes.mp4: cannot open as a video" in failed[0] and "cut.webm: only" in failed[1]
    assert FeatureStore(store).keys() == ["good"]


# ---- skipping bad rows on request, and a loss that stops being finite ----------------------------------------


def test_skip_bad_rows_reports_every_skipped_row(capsys, tiny_synth: Path, tmp_path: Path) -> None:
    root = tmp_path / "synth"
    shutil.copytree(tiny_synth, root)
    data = json.loads((root / "train.json").read_text())
    vid = next(iter(data))
    n = len(data[vid]["timestamps"])
    data[vid]["timestamps"] += [[5.0, 2.0], [1.0, 2.0]]
    data[vid]["sentences"] += ["a person opens the door.", "   "]
    (root / "train.json").write_text(json.dumps(data))
    assert_one_line_error(run_cli(capsys, train_args(root, tmp_path / "runs")), f"item {n}: window [5, 2]: end before start")
    res = run_cli(capsys, train_args(root, tmp_path / "runs", "data.skip_bad_rows=true"))
    assert res.code == 0, res.err[-2000:]
    skipped = sorted(set(res.err_lines))
    assert skipped == [
        f"warning: skipped {root / 'train.json'}:key '{vid}' item {n}: window [5, 2]: end before start",
        f"warning: skipped {root / 'train.json'}:key '{vid}' item {n + 1}: sentence: empty",
    ]


def test_non_finite_loss_on_the_command_line_keeps_the_last_good_checkpoint(
    capsys, monkeypatch, tiny_synth: Path, tmp_path: Path
) -> None:
    real = GroundingModule.compute_losses

    def nan_from_epoch_1(self, batch):
        losses = real(self, batch)
        if self.current_epoch >= 1:
            losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(GroundingModule, "compute_losses", nan_from_epoch_1)
    res = run_cli(capsys, train_args(tiny_synth, tmp_path / "runs", "train.epochs=2", "name=nan"))
    assert_one_line_error(res, "non-finite loss (nan) at step", "(epoch 1); the last good checkpoint is kept")
    last = load_checkpoint(tmp_path / "runs" / "nan" / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
