"""Every plot writes a PNG (atomically), from real model outputs where a model makes the map; the report links them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from momentloc.types import Moment, Pair
from momentloc.viz import (
    plot_alignment_map,
    plot_examples,
    plot_iou_histogram,
    plot_model_map,
    plot_score_curve,
    plot_score_map,
    plot_timeline,
    top1_ious,
)

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    """A complete PNG file: the signature at the start and no temp file beside it."""
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
    return path.read_bytes()[:8] == PNG and path.stat().st_size > 1000 and not leftovers


MOMENTS = [Moment(2.0, 6.5, 0.9), Moment(1.0, 4.0, 0.6), Moment(7.0, 9.0, 0.2)]


def tiny_batch(num_clips: int = 8):
    """A random batch small enough for a fast forward pass."""
    from momentloc.data.random_batch import random_batch

    return random_batch(1, num_clips, 16, num_words=6, text_dim=24, vocab_size=50, supervision="weak", duration=12.0)


def test_timeline_with_and_without_score_curve(tmp_path) -> None:
    assert is_png(plot_timeline(tmp_path / "t.png", 12.0, MOMENTS, windows=[(2.5, 6.0)], query="a person opens the door"))
    times = np.linspace(0, 12, 50)
    curve = (times, np.exp(-((times - 4) ** 2)))
    assert is_png(plot_timeline(tmp_path / "sub" / "c.png", 12.0, MOMENTS, curve=curve, query="q"))
    assert is_png(plot_timeline(tmp_path / "e.png", 12.0, []))


def test_score_curve(tmp_path) -> None:
    t = np.linspace(0, 30, 100)
    assert is_png(plot_score_curve(tmp_path / "s.png", t, np.sin(t), MOMENTS[:1], title="curve"))


def test_tan2d_score_map(tmp_path) -> None:
    from momentloc.models.base import InputSpec
    from momentloc.models.tan2d import Tan2d, Tan2dConfig

    spec = InputSpec(video_dim=16, text_dim=24, vocab_size=50, num_clips=8)
    model = Tan2d(Tan2dConfig(map_size=8, hidden_size=16, num_layers=1, lstm_layers=1), spec).eval()
    score_map = model(tiny_batch())["score_map"]
    assert tuple(score_map.shape[-2:]) == (8, 8)
    assert is_png(plot_score_map(tmp_path / "map.png", score_map, duration=12.0, window=(3.0, 7.5)))
    assert is_png(plot_score_map(tmp_path / "map_clips.png", np.random.default_rng(0).random((6, 6))))


def test_fsan_alignment_map_with_token_labels(tmp_path) -> None:
    from momentloc.models.base import InputSpec
    from momentloc.models.fsan import FSAN, FSANConfig

    spec = InputSpec(video_dim=16, text_dim=24, vocab_size=50, num_clips=None)
    cfg = FSANConfig(hidden=16, align_dim=16, heads=2, ffn=32, text_layers=1, icim_layers=1)
    alignment = FSAN(cfg, spec).eval()(tiny_batch(10))["alignment_map"]
    tokens = ["a", "person", "opens", "the", "door", "."]
    assert tuple(alignment.shape[-2:]) == (6, 10)
    assert is_png(plot_alignment_map(tmp_path / "align.png", alignment, tokens, duration=12.0))


def test_model_map_picks_the_models_own_map(tmp_path) -> None:
    rng = np.random.default_rng(0)
    assert is_png(plot_model_map(tmp_path / "s.png", {"score_map": rng.random((1, 6, 6))}, ["a"], 12.0, (2.0, 6.0)))
    assert is_png(plot_model_map(tmp_path / "a.png", {"alignment_map": rng.random((1, 3, 9))}, ["a", "red", "cup"], 12.0))
    assert plot_model_map(tmp_path / "none.png", {"scores": rng.random((1, 9))}, ["a"], 12.0) is None
    assert not (tmp_path / "none.png").exists()


def test_iou_histogram_and_examples(tmp_path) -> None:
    pairs = [Pair(f"v{i}", 20.0, f"query {i}", windows=((2.0 + i, 8.0 + i),)) for i in range(5)]
    moments = [[Moment(2.0 + i * 1.5, 8.0, 0.5)] for i in range(4)] + [[]]
    ious = top1_ious(pairs, moments)
    assert ious[0] == pytest.approx(1.0) and ious[-1] == 0.0
    assert is_png(plot_iou_histogram(tmp_path / "h.png", ious))
    assert is_png(plot_examples(tmp_path / "x.png", pairs[:3], moments[:3]))


def test_report_has_tables_breakdowns_and_figures(tmp_path) -> None:
    from momentloc.metrics import evaluate_moments
    from momentloc.report import write_report

    rng = np.random.default_rng(0)
    pairs, moments = [], []
    for i in range(12):
        dur = float(rng.uniform(20, 200))
        s = float(rng.uniform(0, dur / 2))
        pairs.append(Pair(f"vid{i}", dur, f"a person | does thing {i}", windows=((s, s + dur * 0.2),)))
        shift = float(rng.uniform(-5, 5))
        moments.append([Moment(max(0, s + shift), s + dur * 0.2 + shift, 1.0), Moment(0, dur / 3, 0.5)])
    metrics = evaluate_moments(pairs, moments)
    path = write_report(tmp_path / "rep", metrics, pairs, moments, title="unit test")
    text = path.read_text()
    assert text.startswith("# unit test")
    assert " R1@0.5 |" in text and "| moment-short |" in text and "| video-long |" in text
    assert "figures/iou_hist.png" in text and "figures/examples.png" in text
    assert "a person \\| does" in text  # a query's pipe does not break the table
    assert is_png(tmp_path / "rep" / "figures" / "iou_hist.png") and is_png(tmp_path / "rep" / "figures" / "examples.png")
