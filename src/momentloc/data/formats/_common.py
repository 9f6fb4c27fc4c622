"""Shared row validation for the annotation parsers: numbers, windows, points, errors and skips."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, TypeVar, Union

from momentloc.errors import DataError
from momentloc.types import Pair

PathLike = Union[str, Path]
T = TypeVar("T")


class SkippedRowWarning(UserWarning):
    """A bad annotation row was skipped because ``skip_bad=True``."""


class RowError(Exception):
    """A problem confined to one row; the parser turns it into a DataError or a skip."""


@dataclass
class ParseReport:
    """What a parse did besides returning pairs: skipped rows, repairs and clipping.

    ``skipped`` and ``repaired`` hold one line per row, formatted like a DataError
    (``file:where: message``). ``clipped_windows`` / ``clipped_points`` count
    rows whose window end (or point) lay past the video duration by less than
    the format's tolerance and was clipped to it.
    """

    rows: int = 0
    skipped: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    clipped_windows: int = 0
    clipped_points: int = 0
    files: list[str] = field(default_factory=list)


class RowSink:
    """Collects parsed pairs for one file; bad rows raise, or are skipped and reported."""

    def __init__(self, path: PathLike, skip_bad: bool, report: Optional[ParseReport]) -> None:
        self.path = Path(path)
        self.skip_bad = skip_bad
        self.report = report if report is not None else ParseReport()
        self.report.files.append(str(self.path))
        self.pairs: list[Pair] = []
        self._ids: dict[str, str] = {}

    def bad(self, where: str, message: str, depth: int = 0) -> None:
        """Raise a DataError for this row, or record and warn when skipping bad rows.

        ``depth`` counts the helper frames (methods of this class) between the
        parser and this call, so that the warning is attributed to the same
        caller however the parser reached it.
        """
        err = DataError(self.path, message, where=where)
        if not self.skip_bad:
            raise err
        self.report.skipped.append(str(err))
        # A warning as well as the report, so a skip is never silent even for
        # callers that passed no report.
        warnings.warn(f"skipped {err}", SkippedRowWarning, stacklevel=4 + depth)

    def repaired(self, where: str, message: str) -> None:
        """Record a deliberate repair of a known-bad row."""
        self.report.repaired.append(str(DataError(self.path, message, where=where)))

    def add(self, pair: Pair, where: str, depth: int = 0) -> None:
        """Keep a pair unless its query id was already used in this file."""
        self.report.rows += 1
        qid = pair.query_id or ""
        if qid in self._ids:
            self.bad(where, f"duplicate query id {qid!r} (first at {self._ids[qid]})", depth)
            return
        self._ids[qid] = where
        self.pairs.append(pair)

    def collect(self, where: str, build: Callable[[], Pair], id_label: Optional[str] = None) -> None:
        """Keep the pair ``build`` makes of one row; a RowError it raises makes the row bad.

        With ``id_label`` the pair's query id is added to where the row is, as
        ``where (id_label query_id)``, in a duplicate-id message.
        """
        try:
            pair = build()
        except RowError as e:
            self.bad(where, str(e), depth=1)
            return
        self.add(pair, where if id_label is None else f"{where} ({id_label} {pair.query_id})", depth=1)

    def lines(self) -> Iterator[tuple[str, str]]:
        """(where, text) per non-blank line of the file; a line that is not UTF-8 is a bad row."""
        for lineno, text, error in iter_lines(self.path):
            where = f"line {lineno}"
            if error is not None:
                self.bad(where, error, depth=1)
                continue
            assert text is not None
            yield where, text

    def duplicate_keys(self, keys: list[str], holder: str) -> None:
        """One bad row per repeated JSON key; ``holder`` names the object in the message."""
        for key in keys:
            self.bad(f"key {key!r}", f"duplicate key ({holder} lists it twice; the first is kept)", depth=1)


def read_text(path: PathLike) -> str:
    """The whole file as UTF-8 text; a DataError names the line of the first bad byte."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        message = f"not UTF-8: byte 0x{data[e.start]:02x} cannot be decoded"
        raise DataError(path, message, where=f"line {line}") from None


def read_bytes(path: PathLike) -> bytes:
    """The raw file; a missing or unreadable file is a DataError."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file not found")
    try:
        return p.read_bytes()
    except OSError as e:
        raise DataError(p, f"cannot read: {e.strerror}") from None


def iter_lines(path: PathLike) -> Iterator[tuple[int, Optional[str], Optional[str]]]:
    """(line number, text, error) per non-blank line; error is set for a non-UTF-8 line."""
    data = read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for i, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield i, None, f"not UTF-8: byte 0x{raw[e.start]:02x} at column {e.start + 1} cannot be decoded"
            continue
        if text.strip():
            yield i, text, None


def _first_value_wins(duplicates: list[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A json ``object_pairs_hook`` keeping the first value of a repeated key and appending the key to ``duplicates``."""

    def hook(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                duplicates.append(k)
                continue
            out[k] = v
        return out

    return hook


def load_json(path: PathLike, text: Optional[str] = None) -> tuple[Any, list[str]]:
    """Parse a JSON document; returns (data, duplicated keys). For a duplicated key the first value is kept."""
    duplicates: list[str] = []
    if text is None:
        text = read_text(path)
    try:
        return json.loads(text, object_pairs_hook=_first_value_wins(duplicates)), duplicates
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON: {e.msg}", where=f"line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise DataError(path, "JSON nested too deeply to read (expected the dataset's annotation layout)") from None


def load_json_of(path: PathLike, kind: type, expected: str) -> tuple[Any, list[str]]:
    """:func:`load_json` of a document whose top level is a ``kind``; else a DataError saying ``expected``."""
    data, duplicates = load_json(path)
    if not isinstance(data, kind):
        raise DataError(path, f"expected {expected}, got a {type(data).__name__}")
    return data, duplicates


def json_row(text: str) -> Any:
    """One JSON value from one line of text; syntax errors and duplicate keys are RowErrors."""
    seen: list[str] = []
    try:
        data = json.loads(text, object_pairs_hook=_first_value_wins(seen))
    except json.JSONDecodeError as e:
        raise RowError(f"invalid JSON at column {e.colno}: {e.msg}") from None
    if seen:
        raise RowError(f"duplicate key {seen[0]!r}")
    return data


def field_of(row: Mapping[str, Any], key: str) -> Any:
    """row[key], or a RowError naming the missing field."""
    if not isinstance(row, Mapping):
        raise RowError(f"expected a JSON object, got {type(row).__name__}")
    if key not in row:
        raise RowError(f"missing field {key!r}")
    return row[key]


def number(value: Any, what: str) -> float:
    """A finite JSON number (not a bool, not a string), as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError(f"{what}: expected a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise RowError(f"{what}: expected a finite number, got {value!r}")
    return out


def number_token(token: str, what: str) -> float:
    """A finite number written as text."""
    try:
        out = float(token)
    except ValueError:
        raise RowError(f"{what}: expected a number, got {token!r}") from None
    if not math.isfinite(out):
        raise RowError(f"{what}: expected a finite number, got {token!r}")
    return out


def positive(value: float, what: str) -> float:
    """value if > 0, else a RowError."""
    if value <= 0:
        raise RowError(f"{what}: expected a positive number, got {value:g}")
    return value


def positive_number(value: Any, what: str) -> float:
    """A finite JSON number > 0, as float."""
    return positive(number(value, what), what)


def sentence(value: Any, what: str = "sentence") -> str:
    """A non-empty string, stripped of surrounding white space."""
    if not isinstance(value, str):
        raise RowError(f"{what}: expected a string, got {value!r}")
    out = value.strip()
    if not out:
        raise RowError(f"{what}: empty")
    return out


def non_empty_string(value: Any, what: str) -> str:
    """A string that is not only white space, returned unchanged."""
    if not isinstance(value, str) or not value.strip():
        raise RowError(f"{what}: expected a non-empty string, got {value!r}")
    return value


def row_id(value: Any, what: str) -> str:
    """An integer or non-blank string identifying a row, as a stripped string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or str(value).strip() == "":
        raise RowError(f"{what}: expected an integer or a string, got {value!r}")
    return str(value).strip()


def non_empty_list(value: Any, what: str, items: str) -> list[Any]:
    """A JSON list with at least one element; ``items`` describes an element in the message."""
    if not isinstance(value, list) or not value:
        raise RowError(f"{what}: expected a non-empty list of {items}, got {value!r}")
    return value


def two_values(value: Any, what: str, parse: Callable[[Any, str], T], shape: str) -> tuple[T, T]:
    """A JSON list of two values, each read by ``parse``; ``shape`` (e.g. ``[start, end]``) is named in the message."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise RowError(f"{what}: expected {shape}, got {value!r}")
    return parse(value[0], f"{what} start"), parse(value[1], f"{what} end")


def pair_of_numbers(value: Any, what: str) -> tuple[float, float]:
    """A [start, end] JSON list of two numbers."""
    return two_values(value, what, number, "[start, end]")


def check_window(
    start: float,
    end: float,
    duration: float,
    tol: float,
    report: ParseReport,
    force_clip: bool = False,
) -> tuple[float, float]:
    """Validate a window in seconds and clip a small overshoot past the duration.

    Errors: a negative time, end before start (start == end is allowed), a start
    or end more than ``tol`` seconds past ``duration``. ``force_clip`` skips the
    tolerance for rows that a documented erratum already flagged.
    """
    if start < 0 or end < 0:
        raise RowError(f"window [{start:g}, {end:g}]: negative time")
    if end < start:
        raise RowError(f"window [{start:g}, {end:g}]: end before start")
    if not force_clip and end > duration + tol:
        raise RowError(
            f"window [{start:g}, {end:g}] ends {end - duration:.3g} s past the video duration "
            f"{duration:g} s (more than the {tol:g} s tolerance)"
        )
    if end > duration:
        report.clipped_windows += 1
        start, end = min(start, duration), duration
    return start, end


def check_point(
    point: float,
    raw: tuple[float, float],
    clipped: tuple[float, float],
    report: ParseReport,
    tol: float = 1e-6,
) -> float:
    """Validate that a point lies in its (unclipped) window; move it into the clipped window."""
    if point < 0:
        raise RowError(f"point {point:g}: negative time")
    lo, hi = raw
    if point < lo - tol or point > hi + tol:
        raise RowError(f"point {point:g} lies outside its window [{lo:g}, {hi:g}]")
    inside = min(max(point, clipped[0]), clipped[1])
    if inside != point and abs(inside - point) > tol:
        report.clipped_points += 1
    return inside


def repair_erratum(
    sink: RowSink,
    where: str,
    label: str,
    start: float,
    end: float,
    reason: str,
    duration: float,
    tol: float,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Apply the documented fix of a known-bad row: order the times, clip to the video; record it.

    Returns (raw window in time order, clipped window).
    """
    raw = (min(start, end), max(start, end))
    window = check_window(*raw, duration, tol, sink.report, force_clip=True)
    done = ["swapped" if start > end else "already in order in this file"]
    if window != raw:
        done.append(f"clipped to the {duration:g} s video")
    sink.repaired(where, f"{label} [{start:g}, {end:g}]: {reason}; {', '.join(done)}")
    return raw, window


def erratum(errata: Mapping[tuple[str, float, float], str], video_id: str, start: float, end: float) -> Optional[str]:
    """The documented reason when (video, window) is a known-bad row, in either time order."""
    return errata.get((video_id, min(start, end), max(start, end)))


def resolve_window(
    sink: RowSink,
    where: str,
    video_id: str,
    start: float,
    end: float,
    duration: float,
    tol: float,
    reason: Optional[str],
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Check a window, or repair it when ``reason`` (from :func:`erratum`) says it is a known-bad row.

    Returns (raw window, window to use): the raw one, in time order, is what a
    point label is checked against (:func:`check_point`).
    """
    if reason is None:
        return (start, end), check_window(start, end, duration, tol, sink.report)
    return repair_erratum(sink, where, video_id, start, end, reason, duration, tol)


def next_query_id(counts: dict[str, int], video_id: str) -> str:
    """``video#k`` for the k-th query (from 0) of a video, counting it in ``counts``."""
    k = counts.get(video_id, 0)
    counts[video_id] = k + 1
    return f"{video_id}#{k}"


def single_window_pair(
    video_id: str,
    duration: float,
    query: str,
    window: tuple[float, float],
    point: Optional[float],
    query_id: str,
) -> Pair:
    """The pair of a format with one window (and at most one point label) per query."""
    return Pair(
        video_id=video_id,
        duration=duration,
        query=query,
        windows=(window,),
        point=point,
        query_id=query_id,
    )
