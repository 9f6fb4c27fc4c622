"""Zero-shot moments: image-text cosine per clip -> ranked stretches in seconds, library and `momentloc zero-shot`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clirun import assert_one_line_error, run_cli
from momentloc.encoders import FrameEncoder, TinyEncoder
from momentloc.errors import MomentlocError
from momentloc.zero_shot import best_stretch, clip_text_scores, localize_zero_shot, stretch_moment, stretch_moments

PALETTE = {"red": (220, 30, 30), "green": (30, 190, 60), "blue": (40, 70, 220), "yellow": (235, 215, 40)}


class ColourClip(FrameEncoder):
    """A stand-in for CLIP: a frame maps to the unit vector of its nearest palette colour (a little of the others
    mixed in), the sentence "colour c" (any sentence naming c) to the same vector e_c."""

    name = "fake-clip"
    dim = len(PALETTE)

    def __init__(self) -> None:
        self.rgb = np.array(list(PALETTE.values()), np.float64)
        self.text_calls = 0

    def encode(self, frames: np.ndarray) -> np.ndarray:
        mean = frames.reshape(len(frames), -1, 3).astype(np.float64).mean(axis=1)
        nearest = np.abs(mean[:, None, :] - self.rgb[None]).sum(-1).argmin(1)
        out = np.full((len(frames), self.dim), 0.1, np.float32)
        out[np.arange(len(frames)), nearest] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode_text(self, texts) -> np.ndarray:
        self.text_calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            hits = [k for k, c in enumerate(PALETTE) if c in text]
            assert len(hits) == 1, text
            out[row, hits[0]] = 1.0
        return out


def frames_of(segments, fps: float, size=(16, 12)) -> np.ndarray:
    """Flat-colour frames sampled at ``fps`` for (colour, seconds) segments."""
    frames = []
    for colour, seconds in segments:
        for _ in range(int(round(seconds * fps))):
            img = np.empty((size[1], size[0], 3), np.uint8)
            img[:] = PALETTE[colour]
            frames.append(img)
    return np.stack(frames)


def test_best_stretch_is_the_largest_sum_and_skips_taken_clips() -> None:
    assert best_stretch(np.array([-1.0, 2.0, 3.0, -10.0, 4.0])) == (1, 3)
    assert best_stretch(np.array([-1.0, 2.0, 1.0, -10.0, 4.0])) == (4, 5)
    assert best_stretch(np.array([-1.0, 2.0, 3.0, -1.0, 4.0])) == (1, 5)
    assert best_stretch(np.array([-3.0, -1.0, -2.0])) == (1, 2)  # all negative: the best single clip
    assert best_stretch(np.array([5.0, -np.inf, 1.0, 1.0])) == (0, 1)
    assert best_stretch(np.array([-np.inf, 1.0, 1.0, -np.inf])) == (1, 3)


def test_stretch_moments_rank_disjoint_stretches_in_seconds() -> None:
    # 20 clips over 10 s: a strong bump at clips 4..7 (2-4 s), a weaker one at 14..15 (7-8 s).
    curve = np.zeros(20)
    curve[4:8] = 1.0
    curve[14:16] = 0.6
    first = stretch_moment(curve, 10.0)
    assert (first.start, first.end) == pytest.approx((2.0, 4.0))
    assert first.score == pytest.approx(1.0)
    ranked = stretch_moments(curve, 10.0, top_k=3)
    assert [(m.start, m.end) for m in ranked[:2]] == [pytest.approx((2.0, 4.0)), pytest.approx((7.0, 8.0))]
    assert ranked[0] == first
    assert len(ranked) == 3
    for a in range(len(ranked)):  # disjoint
        for b in range(a + 1, len(ranked)):
            assert min(ranked[a].end, ranked[b].end) <= max(ranked[a].start, ranked[b].start) + 1e-9
    # Every clip taken: no more moments than the clips allow.
    assert len(stretch_moments(np.array([1.0, 0.0, 1.0]), 3.0, top_k=10)) <= 3
    with pytest.raises(ValueError):
        stretch_moments(np.array([]), 1.0)


def test_clip_text_scores_are_cosines() -> None:
    feats = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    text = np.array([[0.0, 5.0]])
    np.testing.assert_allclose(clip_text_scores(feats, text), [[0.0, np.sqrt(0.5), 1.0]], atol=1e-9)


def test_localize_zero_shot_finds_each_colour_on_frames() -> None:
    # 2 fps; red 0-3 s, green 3-5 s, blue 5-9 s, red again 9-10 s.
    segments = [("red", 3.0), ("green", 2.0), ("blue", 4.0), ("red", 1.0)]
    frames = frames_of(segments, fps=2.0)
    enc = ColourClip()
    out = localize_zero_shot(enc, frames, ["the screen is green", "colour blue", "colour red"], fps=2.0, top_k=2)
    assert enc.text_calls == 1  # all sentences in one batch
    assert (out[0][0].start, out[0][0].end) == pytest.approx((3.0, 5.0))
    assert (out[1][0].start, out[1][0].end) == pytest.approx((5.0, 9.0))
    # red: the longer stretch first, then the one second at the end.
    assert [(m.start, m.end) for m in out[2]] == [pytest.approx((0.0, 3.0)), pytest.approx((9.0, 10.0))]
    assert out[2][0].score == pytest.approx(1 / np.sqrt(1.03), abs=1e-6)  # cosine of a red frame with e_red
    # The same from clip features, with the duration given; pooling two frames per clip keeps the seconds.
    feats = enc.encode(frames)
    again = localize_zero_shot(enc, feats, "colour blue", duration=10.0, top_k=1)
    assert (again[0][0].start, again[0][0].end) == pytest.approx((5.0, 9.0))
    pooled = localize_zero_shot(enc, frames, "colour green", fps=2.0, frames_per_clip=2, top_k=1)
    assert (pooled[0][0].start, pooled[0][0].end) == pytest.approx((3.0, 5.0))


def test_localize_zero_shot_refuses_an_encoder_without_a_text_tower() -> None:
    with pytest.raises(MomentlocError, match="no text tower"):
        localize_zero_shot(TinyEncoder(dim=8), frames_of([("red", 1.0)], 2.0), "colour red", fps=2.0)
    with pytest.raises(MomentlocError, match="top_k"):
        localize_zero_shot(ColourClip(), frames_of([("red", 1.0)], 2.0), "colour red", fps=2.0, top_k=0)


av = pytest.importorskip("av", reason="PyAV is the [video] extra")


def test_zero_shot_on_a_video_file_and_the_command(tmp_path, capsys, monkeypatch) -> None:
    from momentloc import encoders
    from momentloc.video import COLOURS, write_synthetic_video

    path = tmp_path / "clip.mp4"
    segments = [("red", 2.0), ("green", 3.0), ("blue", 2.0), ("yellow", 2.0)]  # green 2-5 s, yellow 7-9 s
    write_synthetic_video(path, segments, fps=10)
    assert all(PALETTE[c] == COLOURS[c] for c, _ in segments)
    out = localize_zero_shot(ColourClip(), path, ["colour green", "colour yellow"], fps=2.0, top_k=3)
    assert (out[0][0].start, out[0][0].end) == pytest.approx((2.0, 5.0), abs=0.51)  # one clip of codec slack
    assert (out[1][0].start, out[1][0].end) == pytest.approx((7.0, 9.0), abs=0.51)

    # The command builds its encoder with momentloc.encoders.load_encoder; give it the stand-in.
    monkeypatch.setattr(encoders, "load_encoder", lambda kind, weights=None, **kw: ColourClip())
    jsonl = tmp_path / "moments.jsonl"
    res = run_cli(capsys, ["zero-shot", "--video", path, "--query", "colour green", "--query", "colour blue",
                           "--fps", 2, "--top-k", 2, "--out", jsonl])
    assert res.code == 0, res.err
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["query"] for r in rows] == ["colour green", "colour blue"]
    assert len(rows[0]["moments"]) == 2
    assert rows[0]["moments"][0][:2] == pytest.approx([2.0, 5.0], abs=0.51)
    assert rows[1]["moments"][0][:2] == pytest.approx([5.0, 7.0], abs=0.51)


def test_zero_shot_command_errors_are_one_line(tmp_path, capsys) -> None:
    from momentloc.video import write_synthetic_video

    path = tmp_path / "clip.mp4"
    write_synthetic_video(path, [("red", 1.0), ("blue", 1.0)], fps=10)
    missing = tmp_path / "ViT-B-32.pt"
    assert_one_line_error(run_cli(capsys, ["zero-shot", "--video", path, "--query", "x", "--weights", missing]),
                          "CLIP weights file not found", str(missing))
    assert_one_line_error(run_cli(capsys, ["zero-shot", "--video", path, "--query", "x"]), "needs --weights")
    assert_one_line_error(run_cli(capsys, ["zero-shot", "--video", path, "--query", "x", "--encoder", "tiny"]),
                          "no text tower")
    assert_one_line_error(run_cli(capsys, ["zero-shot", "--video", tmp_path / "none.mp4", "--query", "x",
                                           "--encoder", "tiny"]), "video file not found")
    assert_one_line_error(run_cli(capsys, ["zero-shot", "--video", path, "--encoder", "tiny"]), "--query")
