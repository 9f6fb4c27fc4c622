"""Video decoding at a fixed fps (by timestamp), frame encoders, resumable extraction into feature stores."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av", reason="PyAV is the [video] extra")

from momentloc.data.features import FeatureStore  # noqa: E402
from momentloc.errors import DataError, MomentlocError  # noqa: E402
from momentloc.video import (  # noqa: E402
    COLOURS,
    ClipEncoder,
    FrameSampler,
    TinyEncoder,
    encode_video_file,
    extract_features,
    list_videos,
    read_store_spec,
    write_colour_dataset,
    write_synthetic_video,
)

RGB = ("red", "green", "blue")


def nearest_colour(pixel: np.ndarray) -> str:
    """The palette colour closest to one decoded pixel (codecs shift values a little)."""
    return min(COLOURS, key=lambda c: float(np.abs(np.array(COLOURS[c]) - pixel.astype(float)).sum()))


class CountingEncoder(TinyEncoder):
    """The tiny encoder, counting how many batches it encodes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def encode(self, frames: np.ndarray) -> np.ndarray:
        self.calls += 1
        return super().encode(frames)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A 6 s and a 4 s video, a variable-rate one, and a file that is not a video."""
    root = tmp_path_factory.mktemp("videos")
    out = {"six": root / "six.mp4", "four": root / "four.webm"}
    write_synthetic_video(out["six"], [(c, 2.0) for c in RGB], fps=10)
    write_synthetic_video(out["four"], [("yellow", 1.0), ("white", 3.0)], fps=12)
    # Frames bunch up and thin out; colours change at 2 s (green) and 4 s (blue).
    out["vfr"] = root / "vfr.mkv"
    write_synthetic_video(out["vfr"], [(c, 2.0) for c in RGB], frame_times=[0, 0.3, 0.35, 1.0, 2.2, 2.25, 3.9, 4.0, 5.5])
    out["bad"] = root / "notes.mp4"
    out["bad"].write_text("this is not a video")
    return out


def test_constant_rate_sampling_hits_the_colour_changes(clips) -> None:
    sampler = FrameSampler(clips["six"], fps=2)
    frames = list(sampler)
    assert [t for t, _ in frames] == [i / 2 for i in range(12)]
    assert [nearest_colour(f[30, 5]) for _, f in frames] == [c for c in RGB for _ in range(4)]
    assert sampler.duration == pytest.approx(6.0, abs=1e-3)
    assert sampler.frames_decoded == 60


def test_variable_frame_rate_picks_frames_by_timestamp(clips) -> None:
    sampler = FrameSampler(clips["vfr"], fps=2)
    got = [nearest_colour(f[30, 5]) for _, f in sampler]
    # At t=2.0 the frame on screen is still the red one from t=1.0 (the next frame comes at 2.2 s);
    # the blue frame at exactly 4.0 s is shown at t=4.0.
    assert got == ["red"] * 5 + ["green"] * 3 + ["blue"] * 4
    assert sampler.duration == pytest.approx(5.6, abs=1e-3)


def test_extract_counts_clips_reports_failures_and_resumes(clips, tmp_path) -> None:
    enc = CountingEncoder()
    store = tmp_path / "store"
    videos = [clips["six"], clips["bad"], clips["four"]]
    res = extract_features(videos, enc, fps=2.0, out_store=store, batch_size=5, progress=False)
    assert sorted(res.done) == ["four", "six"]
    assert [Path(p).name for p, _ in res.failed] == ["notes.mp4"]
    assert "cannot open as a video" in res.failed[0][1] and str(clips["bad"]) not in res.failed[0][1]
    fs = FeatureStore(store, dim=32)
    assert fs.get("six").shape == (12, 32) and fs.get("four").shape == (8, 32)
    spec = read_store_spec(store)
    assert spec is not None and (spec.encoder, spec.dim, spec.fps) == ("tiny", 32, 2.0)
    index = [json.loads(line) for line in (store / "videos.jsonl").read_text().splitlines()]
    assert {r["id"]: r["clips"] for r in index} == {"six": 12, "four": 8}
    calls = enc.calls
    again = extract_features(videos, enc, fps=2.0, out_store=store, progress=False)
    assert sorted(again.skipped) == ["four", "six"] and again.done == [] and len(again.failed) == 1
    assert enc.calls == calls  # nothing was decoded or encoded again


def test_a_video_killed_mid_write_is_redone(clips, tmp_path) -> None:
    store = tmp_path / "store"
    extract_features([clips["six"]], TinyEncoder(), 2.0, store, progress=False)
    # A kill between the atomic .npy rename and the index line: the video counts as not done.
    (store / "videos.jsonl").write_text('{"id": "si')
    (store / ".four.npy.123.tmp").write_bytes(b"torn")  # a temp file a kill left behind
    res = extract_features([clips["six"], clips["four"]], TinyEncoder(), 2.0, store, progress=False)
    assert sorted(res.done) == ["four", "six"]
    assert FeatureStore(store).keys() == ["four", "six"]


def test_store_refuses_features_of_another_encoder(clips, tmp_path) -> None:
    store = tmp_path / "store"
    extract_features([clips["six"]], TinyEncoder(), 2.0, store, progress=False)
    with pytest.raises(DataError, match="store holds features of encoder 'tiny' \\(dim 32"):
        extract_features([clips["four"]], TinyEncoder(dim=8), 2.0, store, progress=False)
    with pytest.raises(DataError, match="at 2 fps, not"):
        extract_features([clips["four"]], TinyEncoder(), 1.0, store, progress=False)


def test_single_file_stores_and_clip_pooling(clips, tmp_path) -> None:
    out = tmp_path / "feats.h5"
    res = extract_features([clips["six"], clips["vfr"]], TinyEncoder(dim=8), 2.0, out, frames_per_clip=3, progress=False)
    assert not res.failed
    fs = FeatureStore(out, dim=8)
    assert fs.get("six").shape == (4, 8) and fs.get("vfr").shape == (4, 8)
    assert read_store_spec(out).clip_seconds == pytest.approx(1.5)


def test_tiny_encoder_is_deterministic_and_round_trips(tmp_path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 50, 3), dtype=np.uint8)
    a, b = TinyEncoder(dim=16, seed=3), TinyEncoder(dim=16, seed=3)
    assert a.fingerprint == b.fingerprint and np.array_equal(a.encode(frames), b.encode(frames))
    assert TinyEncoder(dim=16, seed=4).fingerprint != a.fingerprint
    loaded = TinyEncoder.load(a.save(tmp_path / "tiny.pt"))
    assert loaded.fingerprint == a.fingerprint and loaded.dim == 16
    assert np.allclose(loaded.encode(frames), a.encode(frames))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DataError, match="not a tiny-encoder weights file"):
        TinyEncoder.load(tmp_path / "junk.pt")


def test_colour_dataset_has_windows_that_match_its_videos(tmp_path) -> None:
    root = write_colour_dataset(tmp_path / "colours", videos=5, seed=1)
    data = {**json.loads((root / "train.json").read_text()), **json.loads((root / "val_2.json").read_text())}
    vid, entry = next(iter(data.items()))
    feats, duration = encode_video_file(root / "videos" / f"{vid}.mp4", TinyEncoder(), fps=2.0)
    assert duration == pytest.approx(entry["duration"], abs=1e-3) and feats.shape[0] == round(duration * 2)
    assert len(list_videos(root)) == 5


def _fake_open_clip(dim: int = 12) -> types.ModuleType:
    """A stand-in for open_clip's documented API: create_model_and_transforms, get_tokenizer, encode_image/_text."""
    import torch

    mod = types.ModuleType("open_clip")

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = types.SimpleNamespace(output_dim=dim)
            self.proj = torch.nn.Linear(3, dim)

        def encode_image(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(x.mean((2, 3)))

        def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
            return self.proj(ids.float()[:, :3])

    def create_model_and_transforms(name, pretrained=None, device="cpu"):
        assert Path(pretrained).is_file()  # a local file, never a download tag
        return Model(), None, lambda img: torch.from_numpy(np.asarray(img, np.float32)).permute(2, 0, 1) / 255

    mod.create_model_and_transforms = create_model_and_transforms
    mod.get_tokenizer = lambda name: (lambda texts: torch.ones(len(texts), 5, dtype=torch.long))
    return mod


def test_clip_encoder_uses_the_open_clip_api(clips, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "open_clip", _fake_open_clip())
    weights = tmp_path / "clip.bin"
    weights.write_bytes(b"weights")
    enc = ClipEncoder(weights, model="ViT-B-32")
    assert (enc.name, enc.dim) == ("clip:ViT-B-32", 12)
    feats, _ = encode_video_file(clips["six"], enc, fps=1.0)
    assert feats.shape == (6, 12) and np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-5)
    assert enc.encode_text(["a person opens the door", "red"]).shape == (2, 12)
    with pytest.raises(DataError, match="not found"):
        ClipEncoder(tmp_path / "missing.bin")


def test_clip_encoder_without_open_clip_says_how_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "open_clip", None)
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(MomentlocError, match=r"momentloc\[clip\]"):
        ClipEncoder(tmp_path / "w.bin")


def test_clip_encoder_with_real_open_clip(clips) -> None:
    pytest.importorskip("open_clip", reason="open_clip is not installed (the [clip] extra)")
    import os

    weights = os.environ.get("MOMENTLOC_CLIP_WEIGHTS")
    if not weights or not Path(weights).is_file():
        pytest.skip("set MOMENTLOC_CLIP_WEIGHTS to a local open_clip ViT-B-32 weights file")
    enc = ClipEncoder(weights, os.environ.get("MOMENTLOC_CLIP_MODEL", "ViT-B-32"))
    feats, _ = encode_video_file(clips["six"], enc, fps=1.0)
    assert feats.shape == (6, enc.dim)


def test_cli_extract_lists_failures_and_exits_1(clips, tmp_path) -> None:
    from typer.testing import CliRunner

    from momentloc.cli import app

    out = tmp_path / "cli_store"
    result = CliRunner().invoke(app, ["extract", str(clips["six"]), str(clips["bad"]), "--fps", "2", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "1 extracted" in result.output and "notes.mp4" in result.output
    assert FeatureStore(out).keys() == ["six"]
