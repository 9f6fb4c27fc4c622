"""Plots: prediction vs ground-truth timelines, score curves, 2D-TAN score maps, FSAN alignment maps, IoU histograms.

Figures are built on matplotlib's object API with the Agg canvas (no global pyplot
state, safe in a server thread) and written atomically (temp file + rename).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from momentloc.files import atomic_write
from momentloc.types import Moment, Pair

PathLike = Union[str, Path]
GT_COLOUR, PRED_COLOUR, CURVE_COLOUR = "#2e7d32", "#1565c0", "#ef6c00"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: PathLike) -> Path:
    """Write a figure (PNG; SVG or PDF when the name ends so) via a temp file in the same folder and a rename."""
    fmt = Path(path).suffix.lower().lstrip(".")
    with atomic_write(path) as fh:
        fig.savefig(fh, format=fmt if fmt in ("svg", "pdf") else "png", bbox_inches="tight")
    return Path(path)


def _as_moments(moments: Sequence) -> list[Moment]:
    return [m if isinstance(m, Moment) else Moment(float(m[0]), float(m[1]), float(m[2]) if len(m) > 2 else 0.0) for m in moments]


def draw_timeline(ax, duration: float, moments: Sequence, windows: Sequence[tuple[float, float]] = (),
                  max_bars: int = 5, label: Optional[str] = None) -> None:
    """Ground truth on the top row, ranked predictions below it (best first), time in seconds on x."""
    rows = _as_moments(moments)[:max_bars]
    labels = []
    y = 0
    for s, e in windows:
        ax.barh(y, e - s, left=s, height=0.7, color=GT_COLOUR, alpha=0.85)
    if windows:
        labels.append("truth")
        y += 1
    scores = np.array([m.score for m in rows]) if rows else np.zeros(0)
    lo, hi = (scores.min(), scores.max()) if len(scores) else (0.0, 1.0)
    for rank, m in enumerate(rows, 1):
        strength = 1.0 if hi <= lo else 0.35 + 0.65 * (m.score - lo) / (hi - lo)
        ax.barh(y, m.end - m.start, left=m.start, height=0.7, color=PRED_COLOUR, alpha=strength)
        ax.text(m.end, y, f" {m.score:.2f}", va="center", fontsize=7)
        labels.append(f"#{rank}")
        y += 1
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(0, max(duration, 1e-6))
    ax.set_xlabel("time (s)")
    if label:
        ax.set_title(label, fontsize=9, loc="left")


def plot_timeline(path: PathLike, duration: float, moments: Sequence, windows: Sequence[tuple[float, float]] = (),
                  query: Optional[str] = None, curve: Optional[tuple[np.ndarray, np.ndarray]] = None, max_bars: int = 5) -> Path:
    """One video: predicted moments (and ground truth, and optionally the score curve) on its timeline."""
    n_rows = min(len(moments), max_bars) + (1 if windows else 0)
    fig = _figure(9, 1.2 + 0.3 * n_rows + (1.6 if curve is not None else 0))
    if curve is not None:
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, max(1, n_rows) * 0.6])
        draw_score_curve(top, *curve, moments=moments[:1])
        top.set_title(textwrap.fill(f'"{query}"', 110) if query else "", fontsize=9, loc="left")  # stays inside
        draw_timeline(bottom, duration, moments, windows, max_bars)
    else:
        draw_timeline(fig.subplots(), duration, moments, windows, max_bars, f'"{query}"' if query else None)
    return save_figure(fig, path)


def draw_score_curve(ax, times: np.ndarray, scores: np.ndarray, moments: Sequence = ()) -> None:
    """A score over the video with the best moments shaded."""
    ax.plot(times, scores, color=CURVE_COLOUR, lw=1.5)
    for m in _as_moments(moments):
        ax.axvspan(m.start, m.end, color=PRED_COLOUR, alpha=0.15)
    finite = np.asarray(scores, dtype=np.float64)[np.isfinite(scores)]
    if finite.size and finite.min() >= 0 and finite.max() <= 1:
        ax.set_ylim(0, 1.02)  # probabilities on their whole scale, so two plots compare at a glance
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)


def plot_score_curve(path: PathLike, times: np.ndarray, scores: np.ndarray, moments: Sequence = (), title: str = "") -> Path:
    """The score curve alone (see ``Predictor.score_curve``)."""
    fig = _figure(9, 2.4)
    ax = fig.subplots()
    draw_score_curve(ax, np.asarray(times), np.asarray(scores), moments)
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=9, loc="left")
    return save_figure(fig, path)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def plot_score_map(path: PathLike, score_map, duration: Optional[float] = None, window: Optional[tuple[float, float]] = None,
                   title: str = "2D-TAN score map") -> Path:
    """A 2D-TAN map [N,N]: row = start clip, column = end clip; cells with end < start are blank."""
    m = _to_numpy(score_map)
    if m.ndim == 3:
        m = m[0]
    n = m.shape[0]
    shown = np.where(np.triu(np.ones_like(m, dtype=bool)), m, np.nan)
    fig = _figure(5.2, 4.4)
    ax = fig.subplots()
    # Cell (i, j) is the moment from the start of clip i to the end of clip j: centre it on those times.
    step = duration / n if duration else 1.0
    x0, y0 = (0.5 * step, -0.5 * step) if duration else (-0.5, -0.5)
    im = ax.imshow(shown, cmap="viridis", extent=[x0, x0 + n * step, y0 + n * step, y0], interpolation="nearest", aspect="auto")
    fig.colorbar(im, ax=ax, fraction=0.046)
    unit = "s" if duration else "clip"
    ax.set_xlabel(f"end ({unit})")
    ax.set_ylabel(f"start ({unit})")
    best = np.unravel_index(np.nanargmax(shown), shown.shape)
    end_of = (lambda j: (j + 1) * step) if duration else (lambda j: j)
    ax.plot([end_of(best[1])], [best[0] * step], marker="x", color="#ff4081", ms=9, mew=2, ls="none", label="best")
    if window is not None and duration:
        ax.plot([window[1]], [window[0]], marker="o", mfc="none", mec="red", ms=10, mew=2, ls="none", label="truth")
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def plot_alignment_map(path: PathLike, alignment, tokens: Sequence[str], duration: Optional[float] = None,
                       title: str = "FSAN alignment map") -> Path:
    """An FSAN word-clip alignment [L,T]: one row per query token, time on x."""
    a = _to_numpy(alignment)
    if a.ndim == 3:
        a = a[0]
    tokens = list(tokens)[: a.shape[0]]
    a = a[: len(tokens)] if tokens else a
    fig = _figure(9, 1.0 + 0.28 * max(len(tokens), 2))
    ax = fig.subplots()
    t = a.shape[1]
    ext = [0, duration, len(a) - 0.5, -0.5] if duration else [-0.5, t - 0.5, len(a) - 0.5, -0.5]
    im = ax.imshow(a, cmap="magma", aspect="auto", extent=ext, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("time (s)" if duration else "clip")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def plot_model_map(path: PathLike, tensors: dict, tokens: Sequence[str], duration: Optional[float] = None,
                   window: Optional[tuple[float, float]] = None) -> Optional[Path]:
    """The model's own map for one query, if it has one: 2D-TAN's score map or FSAN's alignment map."""
    if "score_map" in tensors:
        return plot_score_map(path, tensors["score_map"], duration, window)
    if "alignment_map" in tensors:
        return plot_alignment_map(path, tensors["alignment_map"], tokens, duration)
    return None


def top1_ious(pairs: Sequence[Pair], moments: Sequence[Sequence]) -> np.ndarray:
    """IoU of each pair's top-1 moment with its best-matching ground-truth window (0 without a prediction)."""
    from momentloc.metrics import temporal_iou

    out = np.zeros(len(pairs))
    for i, (pair, row) in enumerate(zip(pairs, moments)):
        rows = _as_moments(row)
        if rows and pair.windows:
            top = np.array([[rows[0].start, rows[0].end]])
            out[i] = max(float(temporal_iou(top, np.array([w]))[0]) for w in pair.windows)
    return out


def plot_iou_histogram(path: PathLike, ious: Sequence[float], thresholds: Sequence[float] = (0.3, 0.5, 0.7),
                       title: str = "top-1 IoU") -> Path:
    """Dataset-level histogram of top-1 IoU with the recall thresholds marked (IoU >= m is a hit)."""
    ious = np.asarray(ious, dtype=np.float64)
    fig = _figure(6, 3.2)
    ax = fig.subplots()
    ax.hist(ious, bins=np.linspace(0, 1, 21), color=PRED_COLOUR, alpha=0.8, edgecolor="white")
    for m in thresholds:
        share = 100.0 * float((ious >= m).mean()) if len(ious) else 0.0
        ax.axvline(m, color="black", ls="--", lw=1)
        ax.text(m, ax.get_ylim()[1] * 0.95, f" {share:.1f}% >= {m}", fontsize=7, va="top")
    ax.set_xlabel("IoU of the top-1 moment")
    ax.set_ylabel("queries")
    ax.set_title(f"{title} (n={len(ious)}, mean {ious.mean() if len(ious) else 0:.2f})", fontsize=9)
    return save_figure(fig, path)


def plot_examples(path: PathLike, pairs: Sequence[Pair], moments: Sequence[Sequence], max_bars: int = 3) -> Path:
    """Several pairs' timelines stacked in one figure, each titled with its query and top-1 IoU."""
    ious = top1_ious(pairs, moments)
    fig = _figure(9, 0.4 + 1.45 * max(1, len(pairs)))
    axes = np.atleast_1d(fig.subplots(max(1, len(pairs)), 1))
    for ax, pair, row, iou in zip(axes, pairs, moments, ious):
        query = pair.query if len(pair.query) < 90 else pair.query[:87] + "..."
        draw_timeline(ax, pair.duration, row, pair.windows, max_bars, f"{pair.video_id}: {query}  (IoU {iou:.2f})")
    fig.tight_layout()
    return save_figure(fig, path)
