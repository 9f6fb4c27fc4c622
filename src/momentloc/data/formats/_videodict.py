"""Shared reader for the dict-of-videos json used by TACoS and ActivityNet (ViGA layout)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from momentloc.data.formats._common import (
    ParseReport,
    PathLike,
    RowError,
    RowSink,
    check_point,
    erratum,
    field_of,
    load_json_of,
    number,
    pair_of_numbers,
    positive_number,
    resolve_window,
    sentence,
    single_window_pair,
)
from momentloc.types import Pair

# (video entry) -> (duration in seconds, time value -> seconds)
TimeBase = Callable[[Mapping[str, Any]], tuple[float, Callable[[float], float]]]


def parse_video_dict(
    path: PathLike,
    time_base: TimeBase,
    unit: str,
    errata: Mapping[tuple[str, float, float], str],
    tol: float,
    glance: Optional[bool],
    skip_bad: bool,
    report: Optional[ParseReport],
) -> list[Pair]:
    """Parse ``{video: {timestamps, sentences, [glance], ...}}``; ``unit`` names the raw time unit in messages."""
    sink = RowSink(path, skip_bad, report)
    data, duplicates = load_json_of(sink.path, dict, "a JSON object keyed by video")
    sink.duplicate_keys(duplicates, "the JSON object")
    if glance is None:
        glance = any(isinstance(v, dict) and "glance" in v for v in data.values())
    for vid, entry in data.items():
        where = f"key {vid!r}"
        try:
            duration, to_s = time_base(entry)
            stamps = _list(field_of(entry, "timestamps"), "timestamps")
            sents = _list(field_of(entry, "sentences"), "sentences")
            points = _list(field_of(entry, "glance"), "glance") if glance else None
            for name, seq in (("sentences", sents), ("glance", points)):
                if seq is not None and len(seq) != len(stamps):
                    raise RowError(f"{len(stamps)} timestamps but {len(seq)} {name}")
        except RowError as e:
            sink.bad(where, str(e))
            continue
        for i, stamp in enumerate(stamps):
            row_where = f"{where} item {i}"
            point = points[i] if points else None
            sink.collect(
                row_where,
                lambda: _row(vid, i, stamp, sents[i], point, duration, to_s, unit, errata, tol, sink, row_where),
            )
    return sink.pairs


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise RowError(f"{what}: expected a list, got {type(value).__name__}")
    return value


def _row(
    vid: str,
    i: int,
    stamp: Any,
    text: Any,
    raw_point: Any,
    duration: float,
    to_s: Callable[[float], float],
    unit: str,
    errata: Mapping[tuple[str, float, float], str],
    tol: float,
    sink: RowSink,
    where: str,
) -> Pair:
    start_u, end_u = pair_of_numbers(stamp, f"timestamps ({unit})")
    query = sentence(text)
    start, end = to_s(start_u), to_s(end_u)
    raw, window = resolve_window(sink, where, vid, start, end, duration, tol, erratum(errata, vid, start_u, end_u))
    point = None
    if raw_point is not None:
        point = check_point(to_s(number(raw_point, f"glance ({unit})")), raw, window, sink.report)
    return single_window_pair(vid, duration, query, window, point, f"{vid}#{i}")


def seconds_base(entry: Mapping[str, Any]) -> tuple[float, Callable[[float], float]]:
    """Time base of a video whose times are seconds and whose entry has ``duration``."""
    duration = positive_number(field_of(entry, "duration"), "duration")
    return duration, float


def frames_base(entry: Mapping[str, Any]) -> tuple[float, Callable[[float], float]]:
    """Time base of a video whose times are frame indices, with ``fps`` and ``num_frames``."""
    fps = positive_number(field_of(entry, "fps"), "fps")
    frames = positive_number(field_of(entry, "num_frames"), "num_frames")
    return frames / fps, lambda f: f / fps
