"""`momentloc extract` killed with SIGKILL mid-run resumes to the same store as an uninterrupted run:
every entry loads, each video is there once, and nothing is torn or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av", reason="PyAV is the [video] extra")

from clirun import run_cli  # noqa: E402

from momentloc.data.features import FeatureStore  # noqa: E402
from momentloc.video import (  # noqa: E402
    INDEX_FILE,
    TinyEncoder,
    extract_features,
    list_videos,
    write_synthetic_video,
)

FPS = 10
COLOURS = ("red", "green", "blue", "yellow", "white", "purple")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Eight 6-8 s colour videos: long enough that the extractor is still busy when it is killed."""
    root = tmp_path_factory.mktemp("extract_videos")
    for i in range(8):
        segments = [(COLOURS[(i + j) % len(COLOURS)], 2.0 + 0.5 * ((i + j) % 2)) for j in range(3)]
        write_synthetic_video(root / f"clip_{i}.mp4", segments, fps=FPS, size=(96, 72))
    return root


@pytest.fixture(scope="module")
def reference(folder: Path, tmp_path_factory) -> Path:
    """The store an uninterrupted extraction writes."""
    store = tmp_path_factory.mktemp("reference") / "store"
    res = extract_features(list_videos(folder), TinyEncoder(), FPS, store, batch_size=8, progress=False)
    assert not res.failed and len(res.done) == 8
    return store


def index_rows(store: Path) -> list[dict]:
    """Every line of the store's index, parsed (a torn line fails the test)."""
    return [json.loads(line) for line in (store / INDEX_FILE).read_text().splitlines()]


def assert_same_store(store: Path, reference: Path) -> None:
    """Same ids, each once; every entry loads and equals the reference; the index lists each id once."""
    ids = sorted(p.stem for p in reference.glob("*.npy"))
    assert FeatureStore(store).keys() == ids
    for vid in ids:
        got = np.load(store / f"{vid}.npy", allow_pickle=False)
        want = np.load(reference / f"{vid}.npy", allow_pickle=False)
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-5), vid
    rows = index_rows(store)
    assert sorted(r["id"] for r in rows) == ids
    assert {r["id"]: r["clips"] for r in rows} == {r["id"]: r["clips"] for r in index_rows(reference)}


def test_sigkill_mid_extraction_then_resume(folder: Path, reference: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "momentloc", "extract", str(folder), "--out", str(store), "--fps", str(FPS),
           "--batch-size", "8"]
    # One thread, like the test process (conftest), so both encode frames with the same float sums.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not list(store.glob("*.npy")):
        time.sleep(0.01)
    alive = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert alive, f"the extractor ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    done_before = len(list(store.glob("*.npy")))
    assert 1 <= done_before < 8, "the kill did not land mid-run"
    for path in store.glob("*.npy"):  # whatever the kill hit, no entry is torn (atomic rename)
        assert np.load(path, allow_pickle=False).shape[1] == 32

    res = run_cli(capsys, ["extract", folder, "--out", store, "--fps", FPS, "--batch-size", 8])
    assert res.code == 0, res.err[-2000:]
    skipped = int(res.out.split(" already done")[0].rsplit(",", 1)[1])
    assert skipped >= 1 and "0 failed" in res.out, res.out
    assert_same_store(store, reference)


def test_torn_index_line_and_stray_temp_file(folder: Path, reference: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    videos = list_videos(folder)
    extract_features(videos[:3], TinyEncoder(), FPS, store, batch_size=8, progress=False)
    # A kill during the index append tears its last line; one during a write leaves a temp file.
    with open(store / INDEX_FILE, "a") as fh:
        fh.write('{"id": "clip_3", "dur')
    (store / ".clip_3.npy.x1y2.tmp").write_bytes(b"\x93NUMPY torn")
    res = extract_features(videos, TinyEncoder(), FPS, store, batch_size=8, progress=False)
    assert sorted(res.skipped) == ["clip_0", "clip_1", "clip_2"] and len(res.done) == 5
    assert_same_store(store, reference)
    again = extract_features(videos, TinyEncoder(), FPS, store, batch_size=8, progress=False)
    assert again.done == [] and len(again.skipped) == 8  # the row after the torn line was readable
