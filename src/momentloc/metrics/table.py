"""Metrics as fixed-width text tables: one row per key prefix before ``/``, one column per metric."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from momentloc.metrics.moments import BIN_NAMES, MOMENT_LENGTH_BINS, VIDEO_LENGTH_BINS


def _fmt(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "-" if np.isnan(value) else f"{float(value):.2f}"
    return str(value)


def format_table(metrics: Mapping[str, object]) -> str:
    """A fixed-width text table: one row per key prefix before ``/`` (``all`` for none), one column per metric."""
    rows: dict[str, dict[str, object]] = {}
    columns: list[str] = []
    for key, value in metrics.items():
        group, _, name = key.rpartition("/")
        group = group or "all"
        rows.setdefault(group, {})[name] = value
        if name not in columns:
            columns.append(name)
    head = ["", *columns]
    body = [[group, *[_fmt(vals[c]) if c in vals else "" for c in columns]] for group, vals in rows.items()]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep, *[line(r) for r in body]])


def metrics_table(metrics: Mapping[str, object], width: int = 80) -> str:
    """The metrics table in ``width`` columns (split into several tables when wider), without breakdown rows that
    hold no query, followed by the breakdowns' bin edges when there are breakdown rows."""
    empty = {k.rpartition("/")[0] for k, v in metrics.items() if k.endswith("/n") and v == 0}
    kept = {k: v for k, v in metrics.items() if k.rpartition("/")[0] not in empty}
    columns: list[str] = []
    for key in kept:
        name = key.rpartition("/")[2]
        if name not in columns:
            columns.append(name)
    tables, chunk = [], []
    for name in columns:
        trial = format_table({k: v for k, v in kept.items() if k.rpartition("/")[2] in (*chunk, name)})
        if chunk and max(map(len, trial.splitlines())) > width:
            tables.append(format_table({k: v for k, v in kept.items() if k.rpartition("/")[2] in chunk}))
            chunk = []
        chunk.append(name)
    if chunk:
        tables.append(format_table({k: v for k, v in kept.items() if k.rpartition("/")[2] in chunk}))
    text = "\n\n".join(tables)
    if any(k.startswith(("moment-", "video-")) for k in metrics):
        moment = " / ".join(f"<= {b:.0%}" for b in MOMENT_LENGTH_BINS) + f" / > {MOMENT_LENGTH_BINS[-1]:.0%}"
        video = " / ".join(f"<= {b:g} s" for b in VIDEO_LENGTH_BINS) + f" / > {VIDEO_LENGTH_BINS[-1]:g} s"
        names = "/".join(BIN_NAMES)
        text += (f"\nmoment-{names}: moment length {moment} of the video"
                 f"\nvideo-{names}: video length {video}")
        if empty:
            text += f"\n(no query in {', '.join(sorted(empty))})"
    return text
