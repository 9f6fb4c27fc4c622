"""Metrics as a fixed-width text table: one row per key prefix before ``/``, one column per metric."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


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
