"""CFMR point labels: a json list of ``[vid, duration_s, [start_s, end_s], sentence, glance_s]``."""

from __future__ import annotations

from typing import Any, Optional

from momentloc.data.formats._common import (
    ParseReport,
    PathLike,
    RowError,
    RowSink,
    check_point,
    check_window,
    load_json_of,
    next_query_id,
    non_empty_string,
    number,
    pair_of_numbers,
    positive_number,
    sentence,
    single_window_pair,
)
from momentloc.types import Pair

# These files carry Charades-STA, TACoS and ActivityNet rows; the widest of
# their tolerances (Charades-STA, see charades.py) applies.
OVERSHOOT_TOL_S = 2.0


def parse_cfmr_glance(
    path: PathLike,
    skip_bad: bool = False,
    report: Optional[ParseReport] = None,
    tol: float = OVERSHOOT_TOL_S,
) -> list[Pair]:
    """Parse a CFMR ``glance_*.json`` file (every pair has a point)."""
    sink = RowSink(path, skip_bad, report)
    # Rows are lists, so a duplicated key can only be in a row that is rejected anyway.
    rows, _ = load_json_of(sink.path, list, "a JSON list of rows")
    per_video: dict[str, int] = {}
    for i, row in enumerate(rows):
        sink.collect(f"item {i}", lambda: _row(row, per_video, tol, sink.report))
    return sink.pairs


def _row(row: Any, per_video: dict[str, int], tol: float, report: ParseReport) -> Pair:
    if not isinstance(row, list) or len(row) != 5:
        raise RowError(f"expected [vid, duration, [start, end], sentence, glance], got {row!r:.120}")
    vid, dur, win, text, glance = row
    vid = non_empty_string(vid, "vid")
    query_id = next_query_id(per_video, vid)
    duration = positive_number(dur, "duration")
    raw = pair_of_numbers(win, "window")
    query = sentence(text)
    window = check_window(*raw, duration, tol, report)
    point = check_point(number(glance, "glance"), raw, window, report)
    return single_window_pair(vid, duration, query, window, point, query_id)
