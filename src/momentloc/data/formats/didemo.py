"""DiDeMo: a json list of queries, times in 5-second chunks, several annotators per query.

Chunk k covers [5k, 5(k+1)) s; a video has ``num_segments`` chunks (5 or 6 in
the shipped files), so its duration is taken as 5 * num_segments s (25 or 30).
Every annotator window goes to ``Pair.annotator_windows``; ``Pair.windows``
holds the consensus: the most frequent annotator window, ties going to the one
listed first.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Optional

from momentloc.data.formats._common import (
    ParseReport,
    PathLike,
    RowError,
    RowSink,
    field_of,
    load_json,
    sentence,
)
from momentloc.errors import DataError
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
    path = Path(path)
    sink = RowSink(path, skip_bad, report)
    data, duplicates = load_json(path)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of queries, got a {type(data).__name__}")
    for key in duplicates:
        sink.bad(f"key {key!r}", "duplicate key (a JSON object lists it twice; the first is kept)")
    for i, row in enumerate(data):
        where = f"item {i}"
        try:
            pair = _row(row)
        except RowError as e:
            sink.bad(where, str(e))
            continue
        sink.add(pair, f"{where} (annotation_id {pair.query_id})")
    return sink.pairs


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        raise RowError(f"{what}: expected an integer, got {value!r}")
    return int(value)


def _row(row: Any) -> Pair:
    ann = field_of(row, "annotation_id")
    if isinstance(ann, bool) or not isinstance(ann, (int, str)) or str(ann).strip() == "":
        raise RowError(f"annotation_id: expected an integer or a string, got {ann!r}")
    query = sentence(field_of(row, "description"), "description")
    video = field_of(row, "video")
    if not isinstance(video, str) or not video.strip():
        raise RowError(f"video: expected a non-empty string, got {video!r}")
    n = _int(field_of(row, "num_segments"), "num_segments")
    if not 1 <= n <= MAX_SEGMENTS:
        raise RowError(f"num_segments: expected 1..{MAX_SEGMENTS}, got {n}")
    times = field_of(row, "times")
    if not isinstance(times, list) or not times:
        raise RowError(f"times: expected a non-empty list of [start_chunk, end_chunk], got {times!r}")
    windows = []
    for j, t in enumerate(times):
        if not isinstance(t, (list, tuple)) or len(t) != 2:
            raise RowError(f"times[{j}]: expected [start_chunk, end_chunk], got {t!r}")
        a, b = _int(t[0], f"times[{j}] start"), _int(t[1], f"times[{j}] end")
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
        query_id=str(ann).strip(),
        annotator_windows=tuple(windows),
    )
