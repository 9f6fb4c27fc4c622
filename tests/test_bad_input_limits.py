"""More of the bad-input corpus: inputs that would exhaust memory or time (limits), numbers out of range, writes
outside where the user pointed, full disks, and run folders. Each stops with one line (exit 2) and leaves no file
behind that the user did not ask for."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import assert_one_line_error, run_cli
from test_bad_input import CONFIG, FAST, ckpts, predict_args, sets, train_args, videos  # noqa: F401 - fixtures

from momentloc.checkpoint import atomic_save, load_checkpoint


def files_under(folder: Path) -> set[Path]:
    """Every file under a folder (hidden temp files included)."""
    return {p for p in folder.rglob("*") if p.is_file()}


# ---- 1. duration is not bytes: clip and frame limits ---------------------------------------------------------


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """A tiny file (three frames) whose timestamps span two hours: 14,400 clips at 2 fps."""
    pytest.importorskip("av", reason="PyAV is the [video] extra")
    from momentloc.video import write_synthetic_video

    path = tmp_path_factory.mktemp("long") / "two_hours.mp4"
    write_synthetic_video(path, [("red", 3600.0), ("blue", 3600.0)], fps=1, frame_times=[0.0, 1.0, 7199.0])
    assert path.stat().st_size < 20_000
    return path


def test_a_tiny_file_of_two_hours_is_refused_by_predict(capsys, ckpts, long_video: Path) -> None:
    res = run_cli(capsys, ["predict", "--checkpoint", ckpts["spec"], "--query", "a person opens the door",
                           "--video", long_video])
    assert_one_line_error(res, f"{long_video}: video too long", "limit of 4096 frames sampled at 2 fps", "--max-clips")


def test_the_frame_limit_holds_where_the_header_says_nothing(long_video: Path) -> None:
    """Without the header's word, the timestamps themselves stop the sampler at the limit."""
    from momentloc.errors import LimitError
    from momentloc.video import FrameSampler

    sampler = FrameSampler(long_video, 2.0, max_frames=50)
    import momentloc.video as video

    real = video._declared_seconds
    video._declared_seconds = lambda container, stream: None
    try:
        with pytest.raises(LimitError, match="timestamps reach past 25 s"):
            for _ in sampler:
                pass
    finally:
        video._declared_seconds = real


def test_extract_reports_a_video_past_the_limit(capsys, videos, tmp_path: Path) -> None:
    res = run_cli(capsys, ["extract", videos["good"], "--out", tmp_path / "store", "--fps", 2, "--max-clips", 5])
    assert res.code == 1 and "Traceback" not in res.err
    assert any("good.webm: video too long" in line and "limit of 5 frames" in line for line in res.err_lines), res.err


def test_a_features_file_past_the_clip_limit_is_refused(capsys, ckpts, tmp_path: Path) -> None:
    path = tmp_path / "long.npy"
    np.save(path, np.zeros((5000, 16), np.float32))
    res = run_cli(capsys, predict_args(ckpts["good"], path, "--duration", 2500))
    assert_one_line_error(res, f"{path}: 5000 clips, more than the limit of 4096", "--max-clips")
    res = run_cli(capsys, predict_args(ckpts["good"], ckpts["npy"], "--duration", 10, "--max-clips", 10))
    assert_one_line_error(res, "20 clips, more than the limit of 10")
    ok = run_cli(capsys, predict_args(ckpts["good"], path, "--duration", 2500, "--max-clips", 5000, "--top-k", 1))
    assert ok.code == 0, ok.err[-2000:]


@pytest.mark.parametrize("shape, expected", [((10**12, 16), "1000000000000 clips, more than the limit"),
                                             ((100, 10**9), "header says shape (100, 1000000000)")])
def test_a_npy_header_claiming_a_huge_shape_is_refused_before_reading(capsys, ckpts, tmp_path: Path, shape, expected) -> None:
    path = tmp_path / "huge.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 64)
    assert_one_line_error(run_cli(capsys, predict_args(ckpts["good"], path, "--duration", 10)), expected)


# ---- 5. writing only where the user pointed --------------------------------------------------------------------


def test_generated_data_never_goes_into_a_folder_of_other_files(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "passwd").write_text("root:x:0:0\n")
    res = run_cli(capsys, ["train", CONFIG, *sets([f"data.annotations={folder}", f"train.out_dir={tmp_path / 'runs'}",
                                                   "train.progress=false"])])
    assert_one_line_error(res, f"{folder}: holds other files and no synthetic benchmark")
    assert files_under(folder) == {folder / "passwd"}


def test_eval_from_another_folder_generates_nothing(capsys, ckpts, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = run_cli(capsys, ["eval", ckpts["good"], *sets(["data.annotations=artifacts/synthetic/ci",
                                                         f"train.out_dir={ckpts['runs']}", "train.progress=false"])])
    assert_one_line_error(res, "no synthetic benchmark at artifacts/synthetic/ci", "momentloc data synth")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "${HOME}", "a/b", ".hidden", ""])
def test_a_run_name_is_a_name_not_a_path(capsys, tiny_synth: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "deep" / "runs"
    res = run_cli(capsys, train_args(tiny_synth, out, f"name='{name}'"))
    assert_one_line_error(res, "key 'name'", "should match pattern")
    assert not (tmp_path / "x").exists() and not out.exists()


def test_variables_expand_in_values_only(tmp_path: Path, monkeypatch) -> None:
    from momentloc.config import load_config

    monkeypatch.setenv("MOMENTLOC_TEST_FEATS", "feats.h5\ntrain: {epochs: 99}")
    monkeypatch.setenv("MOMENTLOC_TEST_ROOT", str(tmp_path))
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"base: [{CONFIG}]\ndata: {{features: '${{MOMENTLOC_TEST_FEATS}}', annotations: $MOMENTLOC_TEST_ROOT/a}}\n")
    loaded = load_config(cfg)
    assert loaded.data.features == "feats.h5\ntrain: {epochs: 99}"  # a value, never new keys
    assert loaded.data.annotations == f"{tmp_path}/a" and loaded.train.epochs != 99


# ---- 3. configs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.name=spn", "key 'model.name': unknown model 'spn'; known:"),
        ("train.batch_size=0", "key 'train.batch_size': Input should be greater than or equal to 1"),
        ("optim.lr=-1", "key 'optim.lr': Input should be greater than or equal to 0"),
        ("optim.lr=.nan", "key 'optim.lr': Input should be a finite number"),
        ("model.params.hidden=-4", "key 'hidden': a size or count cannot be negative, got -4"),
        ("train.num_workers=-1", "key 'train.num_workers': Input should be greater than or equal to 0"),
        ("train.seed=99999999999999999999", "key 'train.seed': Input should be less than or equal to 4294967295"),
        ("train.epochs=-1", "key 'train.epochs': Input should be greater than or equal to 1"),
        ("data.feature_dim=0", "key 'data.feature_dim'"),
        ("data.text.max_words=0", "key 'data.text.max_words'"),
    ],
)
def test_numbers_out_of_range_and_unknown_names(capsys, tiny_synth: Path, tmp_path: Path, override: str, expected: str) -> None:
    res = run_cli(capsys, train_args(tiny_synth, tmp_path / "runs", override))
    assert_one_line_error(res, expected)
    assert not (tmp_path / "runs").exists()


def test_an_out_dir_that_cannot_be_created(capsys, tiny_synth: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    res = run_cli(capsys, train_args(tiny_synth, tmp_path / "afile" / "runs"))
    assert_one_line_error(res, "train.out_dir: cannot create the run folder", "afile")


@pytest.mark.parametrize("case", ["cycle", "self", "folder", "binary", "nul", "not a list"])
def test_bad_config_files(capsys, tmp_path: Path, case: str) -> None:
    cfg = tmp_path / "exp.yaml"
    if case == "cycle":
        (tmp_path / "other.yaml").write_text("base: exp.yaml\n")
        cfg.write_text("base: other.yaml\n")
        expected = "'base:' forms a cycle (exp.yaml -> other.yaml -> exp.yaml)"
    elif case == "self":
        cfg.write_text("base: [exp.yaml]\n")
        expected = "'base:' forms a cycle"
    elif case == "folder":
        (tmp_path / "sub").mkdir()
        cfg.write_text("base: sub\n")
        expected = "sub: is a folder; expected a YAML config file"
    elif case == "binary":
        cfg.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
        expected = "not a text (UTF-8) YAML file: byte 0x89 at offset 0"
    elif case == "nul":
        cfg.write_bytes(b"name: a\x00b\n")
        expected = "holds NUL bytes"
    else:
        cfg.write_text("base: {a: 1}\n")
        expected = "key 'base': expected a file name or a list of file names"
    assert_one_line_error(run_cli(capsys, ["train", cfg]), expected)


def test_resume_with_another_models_checkpoint(capsys, ckpts, tiny_synth: Path, tmp_path: Path) -> None:
    res = run_cli(capsys, [*train_args(tiny_synth, tmp_path / "runs", "model.params.hidden=32"), "--resume", ckpts["good"]])
    assert_one_line_error(res, f"{ckpts['good']}: weights do not fit model 'span'", "instead of")


def test_resume_last_without_a_run(capsys, tiny_synth: Path, tmp_path: Path) -> None:
    res = run_cli(capsys, [*train_args(tiny_synth, tmp_path / "runs"), "--resume", "last"])
    assert_one_line_error(res, "--resume: no last.ckpt in", "nothing to resume")


# ---- 4. run folders -----------------------------------------------------------------------------------------------


def test_a_second_run_into_a_run_folder_is_refused_unless_asked(capsys, tiny_synth: Path, tmp_path: Path) -> None:
    args = train_args(tiny_synth, tmp_path / "runs", "name=twice", "train.progress=true")
    first = run_cli(capsys, args)
    assert first.code == 0 and "it/s" not in first.out + first.err  # no progress bar when the output is not a terminal
    best = tmp_path / "runs" / "twice" / "checkpoints" / "best.ckpt"
    before = best.read_bytes()
    res = run_cli(capsys, args)
    assert_one_line_error(res, "holds the checkpoints of an earlier run (best.ckpt, last.ckpt)", "--overwrite")
    assert best.read_bytes() == before
    res = run_cli(capsys, [*args, "--overwrite", "--set", "train.seed=1"])
    assert res.code == 0, res.err[-2000:]
    assert best.read_bytes() != before
    assert_one_line_error(run_cli(capsys, [*args, "--overwrite", "--resume", "last"]), "not both")


# ---- 6. a full disk ------------------------------------------------------------------------------------------------


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_line_naming_the_file(capsys, ckpts, tmp_path: Path, monkeypatch) -> None:
    import momentloc.files

    out = tmp_path / "moments.jsonl"
    out.write_text("old\n")
    monkeypatch.setattr(momentloc.files.os, "fsync", _no_space)
    res = run_cli(capsys, predict_args(ckpts["good"], ckpts["npy"], "--duration", 10, "--out", out))
    assert_one_line_error(res, f"{out}: cannot write: no space left on device")
    assert out.read_text() == "old\n" and files_under(tmp_path) == {out}  # the old file, no temp file


def test_training_on_a_full_disk_is_one_line(capsys, tiny_synth: Path, tmp_path: Path, monkeypatch) -> None:
    import momentloc.files

    monkeypatch.setattr(momentloc.files.os, "fsync", _no_space)
    res = run_cli(capsys, train_args(tiny_synth, tmp_path / "runs", "name=full"))
    assert_one_line_error(res, "checkpoints", "cannot write: no space left on device")


# ---- 7. numbers from checkpoints and flags --------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, expected", [("fps", 1e6, "fps must be a number from 0.01 to 1000"),
                                                    ("fps", float("nan"), "fps must be a number"),
                                                    ("fps", 1e-6, "fps must be a number"),
                                                    ("frames_per_clip", 10**9, "frames per clip must be a whole number")])
def test_a_checkpoints_feature_spec_out_of_range(capsys, ckpts, videos, tmp_path: Path, field, value, expected) -> None:
    ckpt = load_checkpoint(ckpts["spec"])
    ckpt["momentloc"]["feature_spec"][field] = value
    path = atomic_save(ckpt, tmp_path / "odd.ckpt")
    res = run_cli(capsys, ["predict", "--checkpoint", path, "--query", "a person opens the door", "--video", videos["good"]])
    assert_one_line_error(res, "odd.ckpt (feature_spec): ", expected)


def test_nan_weights_are_refused(capsys, ckpts, tmp_path: Path) -> None:
    ckpt = load_checkpoint(ckpts["good"])
    key = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][key] = torch.full_like(ckpt["state_dict"][key], float("nan"))
    path = atomic_save(ckpt, tmp_path / "nan.ckpt")
    assert_one_line_error(run_cli(capsys, predict_args(path, ckpts["npy"], "--duration", 10)),
                          f"nan.ckpt: weight {key} holds NaN or infinite values")
    res = run_cli(capsys, ["eval", path, *sets([f"train.out_dir={ckpts['runs']}", "train.progress=false"])])
    assert_one_line_error(res, "holds NaN or infinite values")


@pytest.mark.parametrize("extra, expected", [
    (["--fps", "inf"], "fps must be a number from 0.01 to 1000"),
    (["--fps", "nan"], "fps must be a number"),
    (["--fps", 0], "fps must be a number"),
    (["--frames-per-clip", 0], "frames per clip must be a whole number from 1"),
    (["--frames-per-clip", -1], "frames per clip must be a whole number from 1"),
    (["--device", "tpu"], "device 'tpu'"),
])
def test_bad_extract_options(capsys, videos, tmp_path: Path, extra, expected) -> None:
    res = run_cli(capsys, ["extract", videos["good"], "--out", tmp_path / "store", *extra])
    assert_one_line_error(res, expected)
    assert not (tmp_path / "store").exists()


def test_extract_into_an_existing_file(capsys, videos, tmp_path: Path) -> None:
    (tmp_path / "store").write_text("mine")
    res = run_cli(capsys, ["extract", videos["good"], "--out", tmp_path / "store"])
    assert_one_line_error(res, "store: exists and is not a folder")
    assert (tmp_path / "store").read_text() == "mine"


@pytest.mark.parametrize("extra, expected", [
    (["--duration", 10, "--top-k", "1e20"], "'--top-k'"),
    (["--duration", 10, "--top-k", 5000], "'--top-k'"),
    (["--duration", "1e308"], "duration 1e+308 s is past the 1e+07 s"),
    (["--duration", 10, "--device", "tpu"], "device 'tpu'"),
    (["--duration", 10, "--out", "{tmp}"], "--out {tmp}: is a folder"),
    (["--duration", 10, "--plot", "{tmp}"], "--plot {tmp}: is a folder"),
    (["--duration", 10, "--plot", "{tmp}/x.gif"], "expected a .png, .svg or .pdf file name"),
])
def test_bad_predict_numbers_and_outputs(capsys, ckpts, tmp_path: Path, extra, expected) -> None:
    extra = [str(e).format(tmp=tmp_path) for e in extra]
    res = run_cli(capsys, predict_args(ckpts["good"], ckpts["npy"], *extra))
    assert_one_line_error(res, expected.format(tmp=tmp_path))
    assert files_under(tmp_path) == set()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this build has CUDA")
def test_cuda_on_a_cpu_build(capsys, ckpts) -> None:
    res = run_cli(capsys, predict_args(ckpts["good"], ckpts["npy"], "--duration", 10, "--device", "cuda"))
    assert_one_line_error(res, "device 'cuda': no CUDA GPU is available")


def test_features_duration_must_fit_the_feature_spec(capsys, ckpts, tmp_path: Path) -> None:
    """17 clips at 2 fps cover 8.5 s: 8500 s is refused, and the duration is taken from the spec when not given."""
    path = tmp_path / "f.npy"
    np.save(path, np.random.default_rng(0).standard_normal((17, 16)).astype(np.float32))
    res = run_cli(capsys, predict_args(ckpts["spec"], path, "--duration", 8500))
    assert_one_line_error(res, "--duration 8500 s does not fit", "17 clips of 0.5 s", "cover 8.5 s")
    res = run_cli(capsys, predict_args(ckpts["spec"], path, "--out", tmp_path / "m.jsonl"))
    assert res.code == 0, res.err[-2000:]
    moments = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])["moments"]
    assert all(0 <= s < e <= 8.5 + 1e-6 for s, e, _ in moments)


def test_plot_as_svg_writes_svg(capsys, ckpts, tmp_path: Path) -> None:
    res = run_cli(capsys, predict_args(ckpts["good"], ckpts["npy"], "--duration", 10, "--plot", tmp_path / "x.svg"))
    assert res.code == 0, res.err[-2000:]
    assert b"<svg" in (tmp_path / "x.svg").read_bytes()[:500]


@pytest.mark.parametrize("command", ["evaluate", "stats"])
def test_deeply_nested_json(capsys, tmp_path: Path, command: str) -> None:
    row = '{"qid": 1, "query": "a dog runs", "duration": 150, "vid": "x_0_150", "relevant_windows": [[0, 2]]}\n'
    deep = "[" * 100_000 + "]" * 100_000
    if command == "evaluate":
        (tmp_path / "highlight_val_release.jsonl").write_text(row)
        (tmp_path / "p.json").write_text(deep)
        args = ["evaluate", "--dataset", "qvhighlights", "--split", "val", "--predictions", tmp_path / "p.json",
                "--root", tmp_path]
        where = "p.json"
    else:
        (tmp_path / "train.json").write_text(deep)
        args = ["data", "stats", "activitynet", "--split", "train", "--root", tmp_path]
        where = "train.json"
    assert_one_line_error(run_cli(capsys, args), where, "nested too deeply")


def test_bad_choices(capsys, tmp_path: Path) -> None:
    res = run_cli(capsys, ["evaluate", "--dataset", "qvhighlights", "--split", "val", "--predictions", tmp_path / "p.json",
                           "--missing", "bogus"])
    assert_one_line_error(res, "'--missing'", "expected 'error' or 'miss', got 'bogus'")
    res = run_cli(capsys, ["data", "synth", "--size", "huge", "--out", tmp_path / "s"])
    assert_one_line_error(res, "'--size'", "unknown size 'huge'; known: ci")
    assert not (tmp_path / "s").exists()


# ---- 8. serving -----------------------------------------------------------------------------------------------------


def test_serve_refuses_what_it_could_not_serve(capsys, ckpts, videos, tmp_path: Path) -> None:
    res = run_cli(capsys, ["serve", "--checkpoint", ckpts["spec"], "--videos", tmp_path / "missing"])
    assert_one_line_error(res, "missing: videos folder not found")
    assert res.out == ""  # no "serving on ..." before the error
    res = run_cli(capsys, ["serve", "--checkpoint", ckpts["good"], "--videos", videos["good"].parent])
    assert_one_line_error(res, "carries no feature spec")
    assert res.out == ""



def test_didemo_rankings_completed_are_counted(tmp_path: Path) -> None:
    """A ranking of one segment is completed favourably (nearest its top-1 first); the result says how many were."""
    from momentloc.metrics.evaluator import evaluate_predictions
    from momentloc.types import Pair

    pairs = [Pair("v1", 30.0, "a dog runs", ((0.0, 5.0),), query_id="0", annotator_windows=((0.0, 5.0),)),
             Pair("v2", 30.0, "a cat sits", ((5.0, 10.0),), query_id="1", annotator_windows=((5.0, 10.0),))]
    m = evaluate_predictions(pairs, _didemo_file(tmp_path, {"0": [0], "1": [1, 2, 3, 4, 5]}), "didemo")
    assert m["completed_rankings"] == 1


def _didemo_file(tmp_path: Path, rankings: dict) -> Path:
    path = tmp_path / "rankings.json"
    path.write_text(json.dumps(rankings))
    return path


# ---- the command's own pages ---------------------------------------------------------------------------------------


def test_version_help_and_list(capsys, tmp_path: Path, monkeypatch) -> None:
    res = run_cli(capsys, ["--version"])
    assert res.code == 0 and res.out.startswith("momentloc ")
    for args in (["-h"], ["train", "-h"], ["predict", "--help"], ["data", "-h"]):
        res = run_cli(capsys, args)
        assert res.code == 0 and res.out.startswith("Usage: momentloc"), args
        assert "<bool>" not in res.out and max(map(len, res.out.splitlines())) <= 80, res.out
    monkeypatch.chdir(tmp_path)  # shipped config names work from any folder
    res = run_cli(capsys, ["list"])
    assert res.code == 0 and "  span_synthetic_ci" in res.out and max(map(len, res.out.splitlines())) <= 80
    assert "returns the windows that would have hit" in res.out  # a description is whole, not its first line
    res = run_cli(capsys, ["train", "span_synthetic_ci", "--set", "train.epochs=-1"])
    assert_one_line_error(res, "span_synthetic_ci.yaml: key 'train.epochs'")
    assert list(tmp_path.iterdir()) == []


def test_tables_fit_80_columns_without_empty_rows() -> None:
    from momentloc.cli import _rate_line
    from momentloc.metrics.table import metrics_table
    from momentloc.metrics import evaluate_moments
    from momentloc.types import Moment, Pair

    pairs = [Pair("v", 30.0, "a", ((0.0, 5.0),)), Pair("w", 300.0, "b", ((0.0, 100.0),))]
    text = metrics_table(evaluate_moments(pairs, [[Moment(0, 5, 1)], [Moment(0, 50, 1)]]))
    assert max(map(len, text.splitlines())) <= 80, text
    rows = [line.split()[0] for line in text.splitlines() if line[:1].isalpha() and "  " in line]
    assert "moment-short" not in rows and "video-medium" not in rows and "moment-medium" in rows
    assert "moment length <= 10% / <= 30% / > 30% of the video" in text and "video length <= 60 s" in text
    assert _rate_line(1, 2.0, "x").startswith("1 query in") and _rate_line(3, 2.0, "x").startswith("3 queries in")


def test_score_curve_axis_spans_0_to_1_for_probabilities() -> None:
    from momentloc.viz import _figure, draw_score_curve

    ax = _figure(4, 2).subplots()
    draw_score_curve(ax, np.linspace(0, 10, 50), np.linspace(0.2, 0.4, 50))
    assert ax.get_ylim() == (0, 1.02)
    ax = _figure(4, 2).subplots()
    draw_score_curve(ax, np.linspace(0, 10, 50), np.linspace(-3.0, 5.0, 50))  # logits keep their own range
    assert ax.get_ylim()[0] < -2
