"""DiDeMo: a json list of queries, times in 5-second chunks, several annotators per query.

Chunk k covers [5k, 5(k+1)) s; a video has ``num_segments`` chunks (5 or 6 in
the shipped files), so its duration is taken as 5 * num_segments s (25 or 30).
Every annotator window goes to ``Pair.annotator_windows``; ``Pair.windows``
holds the consensus: the most frequent annotator window, ties going to the one
listed first.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Optional

from momentloc.data.formats._common import (
    ParseReport,
    PathLike,
    RowError,
    RowSink,
    field_of,
    load_json_of,
    non_empty_list,
    non_empty_string,
    row_id,
    sentence,
    two_values,
)
from momentloc.types import Pair

CHUNK_S = 5.0
MAX_SEGMENTS = 6  # DiDeMo videos were cut to at most 30 s


def chunks_to_seconds(first: int, last: int, num_segments: int) -> tuple[float, float]:
    """Chunk span [first, last] (inclusive) -> (start, end) seconds, capped at the video end."""
    return CHUNK_S * first, min(CHUNK_S * (last + 1), CHUNK_S * num_segments)


def consensus(windows: list[tuple[float, float]]) -> tuple[float, float]:
    """The most frequent window; among equally frequent ones the first listed."""
    counts = Counter(windows)
    best = max(counts.values())
    return next(w for w in windows if counts[w] == best)


def parse_didemo(
    path: PathLike,
    skip_bad: bool = False,
    report: Optional[ParseReport] = None,
) -> list[Pair]:
    """Parse a DiDeMo ``*_data.json`` file."""
    sink = RowSink(path, skip_bad, report)
    rows, duplicates = load_json_of(sink.path, list, "a JSON list of queries")
    sink.duplicate_keys(duplicates, "a JSON object")
    for i, row in enumerate(rows):
        sink.collect(f"item {i}", lambda: _row(row), id_label="annotation_id")
    return sink.pairs


def _int(value: Any, what: str) -> int:
    # NaN and Infinity (which JSON readers accept) are not integers either
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or float(value) != int(value)):
        raise RowError(f"{what}: expected an integer, got {value!r}")
    return int(value)


def _row(row: Any) -> Pair:
    ann = row_id(field_of(row, "annotation_id"), "annotation_id")
    query = sentence(field_of(row, "description"), "description")
    video = non_empty_string(field_of(row, "video"), "video")
    n = _int(field_of(row, "num_segments"), "num_segments")
    if not 1 <= n <= MAX_SEGMENTS:
        raise RowError(f"num_segments: expected 1..{MAX_SEGMENTS}, got {n}")
    times = non_empty_list(field_of(row, "times"), "times", "[start_chunk, end_chunk]")
    windows = []
    for j, t in enumerate(times):
        a, b = two_values(t, f"times[{j}]", _int, "[start_chunk, end_chunk]")
        if a < 0:
            raise RowError(f"times[{j}] = {t!r}: negative chunk")
        if b < a:
            raise RowError(f"times[{j}] = {t!r}: end before start")
        if b >= n:
            raise RowError(f"times[{j}] = {t!r}: chunk {b} is past the video's {n} chunks")
        windows.append(chunks_to_seconds(a, b, n))
    return Pair(
        video_id=video.strip(),
        duration=CHUNK_S * n,
        query=query,
        windows=(consensus(windows),),
        query_id=ann,
        annotator_windows=tuple(windows),
    )
