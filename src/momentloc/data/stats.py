"""Dataset statistics: counts, duration, moment length and moment position distributions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from momentloc.data.points import point_position
from momentloc.files import atomic_write
from momentloc.types import Pair

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
FRACTION_BINS = 20
SECONDS_BINS = 30

# (stats key, label) in the order the table shows them.
DISTRIBUTIONS = (
    ("duration_s", "video duration (s)"),
    ("moment_length_s", "moment length (s)"),
    ("moment_length_frac", "moment length / duration"),
    ("moment_start_frac", "moment start / duration"),
    ("moment_centre_frac", "moment centre / duration"),
    ("moment_end_frac", "moment end / duration"),
    ("point_position", "point position in window"),
    ("query_words", "query length (words)"),
    ("pairs_per_video", "pairs per video"),
)


def summarize(values: Sequence[float], fraction: bool = False, bins: Optional[int] = None) -> Optional[dict[str, Any]]:
    """count/mean/std/quantiles/histogram of values (None when empty); fractions bin on [0, 1]."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return None
    if fraction:
        counts, edges = np.histogram(np.clip(a, 0.0, 1.0), bins=bins or FRACTION_BINS, range=(0.0, 1.0))
    else:
        hi = float(a.max())
        counts, edges = np.histogram(a, bins=bins or SECONDS_BINS, range=(0.0, hi if hi > 0 else 1.0))
    return {
        "count": int(a.size),
        "mean": float(a.mean()),
        "std": float(a.std()),
        "quantiles": {f"{q:g}": float(v) for q, v in zip(QUANTILES, np.quantile(a, QUANTILES))},
        "hist": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def dataset_stats(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Counts and distributions of a list of pairs (plain, JSON-serialisable types).

    Durations are counted once per video; moment statistics use every window
    of every pair (only QVHighlights has several); fractions are of the video
    duration. Keys of DISTRIBUTIONS hold ``summarize`` dicts (None when empty).
    """
    durations: dict[str, float] = {}
    per_video: Counter[str] = Counter()
    lengths, length_frac, starts, centres, ends, positions, words = [], [], [], [], [], [], []
    n_windows: Counter[int] = Counter()
    for p in pairs:
        durations.setdefault(p.video_id, p.duration)
        per_video[p.video_id] += 1
        n_windows[len(p.windows)] += 1
        words.append(len(p.query.split()))
        pos = point_position(p)
        if pos is not None:
            positions.append(pos)
        d = p.duration if p.duration > 0 else float("nan")
        for s, e in p.windows:
            lengths.append(e - s)
            length_frac.append((e - s) / d)
            starts.append(s / d)
            centres.append((s + e) / 2 / d)
            ends.append(e / d)
    return {
        "pairs": len(pairs),
        "videos": len(durations),
        "windows": int(sum(k * v for k, v in n_windows.items())),
        "pairs_without_window": int(n_windows.get(0, 0)),
        "pairs_with_point": sum(1 for p in pairs if p.point is not None),
        "windows_per_pair": {str(k): int(v) for k, v in sorted(n_windows.items())},
        "duration_s": summarize(list(durations.values())),
        "moment_length_s": summarize(lengths),
        "moment_length_frac": summarize(length_frac, fraction=True),
        "moment_start_frac": summarize(starts, fraction=True),
        "moment_centre_frac": summarize(centres, fraction=True),
        "moment_end_frac": summarize(ends, fraction=True),
        "point_position": summarize(positions, fraction=True),
        "query_words": summarize(words),
        "pairs_per_video": summarize(list(per_video.values())),
    }


def stats_table(stats: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the distributions, for a plain or rich table."""
    header = ["quantity", "mean", "std"] + [_qname(q) for q in QUANTILES]
    rows = []
    for key, label in DISTRIBUTIONS:
        s = stats.get(key)
        if not s:
            continue
        rows.append([label, _num(s["mean"]), _num(s["std"])] + [_num(s["quantiles"][f"{q:g}"]) for q in QUANTILES])
    return header, rows


def format_stats(stats: dict[str, Any], title: Optional[str] = None) -> str:
    """A plain-text report: one line of counts, then a table of the distributions."""
    counts = (
        f"pairs {stats['pairs']:,}  videos {stats['videos']:,}  windows {stats['windows']:,}  "
        f"without window {stats['pairs_without_window']:,}  with point {stats['pairs_with_point']:,}"
    )
    header, rows = stats_table(stats)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = [title] if title else []
    lines.append(counts)
    multi = {k: v for k, v in stats["windows_per_pair"].items() if k != "1"}
    if multi:
        lines.append("windows per pair: " + ", ".join(f"{k}: {v:,}" for k, v in stats["windows_per_pair"].items()))
    for r in [header] + rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def _qname(q: float) -> str:
    return {0.0: "min", 1.0: "max", 0.5: "median"}.get(q, f"{q * 100:g}%")


def _num(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"


def plot_stats(pairs: Sequence[Pair], path: Union[str, Path], title: Optional[str] = None) -> Path:
    """Write a 2x2 figure of histograms (duration, length in s, length fraction, position); returns the path."""
    # The Agg canvas directly, not pyplot: no global backend switch, safe in servers and threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    stats = dataset_stats(pairs)
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    panels = (
        (axes[0, 0], [("duration_s", "videos")], "video duration (s)"),
        (axes[0, 1], [("moment_length_s", "moments")], "moment length (s)"),
        (axes[1, 0], [("moment_length_frac", "moments")], "moment length / video duration"),
        (axes[1, 1], [("moment_start_frac", "start"), ("moment_centre_frac", "centre"), ("moment_end_frac", "end")],
         "moment position / video duration"),
    )
    for ax, series, xlabel in panels:
        for key, label in series:
            s = stats[key]
            if not s:
                continue
            edges, counts = np.asarray(s["hist"]["edges"]), np.asarray(s["hist"]["counts"])
            if len(series) == 1:
                ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="white", label=label)
            else:
                ax.stairs(counts, edges, label=label, linewidth=1.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        if len(series) > 1:
            ax.legend()
    fig.suptitle(title or f"{stats['pairs']:,} pairs, {stats['videos']:,} videos")
    return _save_atomic(fig, Path(path))


def _save_atomic(fig: Any, path: Path) -> Path:
    # temp file + rename, so a crash never leaves a half-written image behind.
    with atomic_write(path) as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".").lower() or "png")
    return path
