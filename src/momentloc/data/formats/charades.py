"""Charades-STA: ``VID START END##sentence`` lines (seconds); durations from the Charades csv.

The ViGA point-label variant puts the point between the times and the sentence:
``VID START END##GLANCE##sentence``. Both variants are read by :func:`parse_charades`.
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional, Sequence

from momentloc.data.formats._common import (
    ParseReport,
    PathLike,
    RowError,
    RowSink,
    check_point,
    erratum,
    next_query_id,
    number_token,
    positive,
    read_text,
    resolve_window,
    sentence,
    single_window_pair,
)
from momentloc.errors import DataError
from momentloc.types import Pair

# Charades-STA times come from the Charades action annotations, whose ends run
# past the csv `length` by up to 1.54 s (measured: 1,805 of 12,408 train rows
# and 562 of 3,720 test rows overshoot, none by more than 1.54 s). Such ends are
# clipped to the duration; anything further out is an error.
OVERSHOOT_TOL_S = 2.0

CSV_NAMES = ("Charades_v1_train.csv", "Charades_v1_test.csv")

# Four rows of the shipped charades_sta_train.txt have start > end; the same
# reversed times are in Charades_v1_train.csv (e.g. LEOL6 `c107 8.00 7.00`).
# ViGA's glance release of the same file swaps them, and so do we. Two of them
# then still lie wholly past the video (LEOL6 is 6.25 s long, AKKWU 12.17 s):
# those windows are clipped to a zero-length window at the video end, which
# keeps the row count of the benchmark (12,408) and every window inside its video.
_REVERSED = "start/end reversed in the Charades source annotations"
ERRATA: dict[tuple[str, float, float], str] = {
    ("LEOL6", 7.0, 8.0): _REVERSED,
    ("IOL8Q", 12.0, 20.9): _REVERSED,
    ("AKKWU", 13.0, 38.0): _REVERSED,
}


def find_duration_csvs(path: PathLike) -> list[Path]:
    """The Charades csv files next to an annotation file (or one folder up, for glance/)."""
    p = Path(path).resolve().parent
    for folder in (p, p.parent):
        found = [folder / n for n in CSV_NAMES if (folder / n).is_file()]
        if found:
            return found
    return []


def load_durations(csv_paths: Sequence[PathLike]) -> dict[str, float]:
    """Video id -> duration (s) from Charades ``Charades_v1_*.csv`` files (column ``length``)."""
    keys = tuple((str(Path(p).resolve()), _stamp(p)) for p in csv_paths)
    return dict(_load_durations_cached(keys))


def _stamp(path: PathLike) -> tuple[int, int]:
    try:
        st = Path(path).stat()
    except OSError:
        raise DataError(path, "file not found") from None
    return st.st_mtime_ns, st.st_size


@lru_cache(maxsize=8)
def _load_durations_cached(keys: tuple[tuple[str, tuple[int, int]], ...]) -> tuple[tuple[str, float], ...]:
    # Cached by (path, mtime, size): every Charades load needs the 4.7 MB csv.
    out: dict[str, float] = {}
    for path, _ in keys:
        reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
        missing = {"id", "length"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(path, f"missing column(s) {sorted(missing)} in the header", where="line 1")
        for row in reader:
            where = f"line {reader.line_num}"
            vid = (row["id"] or "").strip()
            if not vid:
                raise DataError(path, "empty id", where=where)
            try:
                length = positive(number_token((row["length"] or "").strip(), "length"), "length")
            except RowError as e:
                raise DataError(path, str(e), where=where) from None
            if vid in out and out[vid] != length:
                raise DataError(path, f"video {vid!r} listed twice with different lengths", where=where)
            out[vid] = length
    return tuple(out.items())


def parse_charades(
    path: PathLike,
    durations: Optional[Mapping[str, float]] = None,
    glance: Optional[bool] = None,
    skip_bad: bool = False,
    report: Optional[ParseReport] = None,
    tol: float = OVERSHOOT_TOL_S,
) -> list[Pair]:
    """Parse a Charades-STA txt file (plain or ViGA glance variant, detected when ``glance`` is None)."""
    sink = RowSink(path, skip_bad, report)
    if durations is None:
        csvs = find_duration_csvs(sink.path)
        if not csvs:
            raise DataError(sink.path, f"no video durations: neither of {', '.join(CSV_NAMES)} is next to it")
        durations = load_durations(csvs)
    per_video: dict[str, int] = {}
    for where, text in sink.lines():
        if glance is None:
            glance = _looks_like_glance(text)
        sink.collect(where, lambda: _parse_line(text, glance, durations, per_video, tol, sink, where))
    return sink.pairs


def _looks_like_glance(line: str) -> bool:
    parts = line.split("##")
    if len(parts) < 3:
        return False
    try:
        float(parts[1])
    except ValueError:
        return False
    return True


def _parse_line(
    text: str,
    glance: bool,
    durations: Mapping[str, float],
    per_video: dict[str, int],
    tol: float,
    sink: RowSink,
    where: str,
) -> Pair:
    expected = "VID START END##GLANCE##sentence" if glance else "VID START END##sentence"
    parts = text.split("##", 2 if glance else 1)
    if len(parts) != (3 if glance else 2):
        raise RowError(f"expected {expected!r}, got {text!r}")
    head = parts[0].split()
    if len(head) != 3:
        raise RowError(f"expected 'VID START END' before '##', got {parts[0]!r}")
    vid = head[0]
    query_id = next_query_id(per_video, vid)
    start = number_token(head[1], "start")
    end = number_token(head[2], "end")
    query = sentence(parts[-1])
    if vid not in durations:
        raise RowError(f"video {vid!r} has no length in {' / '.join(CSV_NAMES)}")
    duration = float(durations[vid])
    raw, window = resolve_window(sink, where, vid, start, end, duration, tol, erratum(ERRATA, vid, start, end))
    point = None
    if glance:
        point = check_point(number_token(parts[1], "glance"), raw, window, sink.report)
    return single_window_pair(vid, duration, query, window, point, query_id)
