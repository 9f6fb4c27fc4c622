"""CFMR point labels: a json list of ``[vid, duration_s, [start_s, end_s], sentence, glance_s]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from momentloc.data.formats._common import (
    ParseReport,
    PathLike,
    RowError,
    RowSink,
    check_point,
    check_window,
    load_json,
    number,
    pair_of_numbers,
    positive,
    sentence,
)
from momentloc.errors import DataError
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
    path = Path(path)
    sink = RowSink(path, skip_bad, report)
    data, _ = load_json(path)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of rows, got a {type(data).__name__}")
    per_video: dict[str, int] = {}
    for i, row in enumerate(data):
        where = f"item {i}"
        try:
            pair = _row(row, per_video, tol, sink.report)
        except RowError as e:
            sink.bad(where, str(e))
            continue
        sink.add(pair, where)
    return sink.pairs


def _row(row: Any, per_video: dict[str, int], tol: float, report: ParseReport) -> Pair:
    if not isinstance(row, list) or len(row) != 5:
        raise RowError(f"expected [vid, duration, [start, end], sentence, glance], got {row!r:.120}")
    vid, dur, win, text, glance = row
    if not isinstance(vid, str) or not vid.strip():
        raise RowError(f"vid: expected a non-empty string, got {vid!r}")
    k = per_video.get(vid, 0)
    per_video[vid] = k + 1
    duration = positive(number(dur, "duration"), "duration")
    raw = pair_of_numbers(win, "window")
    query = sentence(text)
    window = check_window(*raw, duration, tol, report)
    point = check_point(number(glance, "glance"), raw, window, report)
    return Pair(
        video_id=vid,
        duration=duration,
        query=query,
        windows=(window,),
        point=point,
        query_id=f"{vid}#{k}",
    )
