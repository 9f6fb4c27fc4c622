"""QVHighlights: JSON Lines, one query per line, several relevant windows, 2-s clip saliency.

``relevant_windows`` (seconds) -> ``Pair.windows``; the 3 annotator scores of
each relevant clip are averaged -> ``Pair.saliency`` as (clip index, mean).
The test split carries no labels: ``Pair.windows == ()``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from momentloc.data.formats._common import (
    ParseReport,
    PathLike,
    RowError,
    RowSink,
    check_window,
    field_of,
    json_row,
    non_empty_list,
    non_empty_string,
    number,
    pair_of_numbers,
    positive_number,
    row_id,
    sentence,
)
from momentloc.types import Pair

CLIP_S = 2.0
# Measured: no shipped window ends past its duration. Allow rounding noise only.
OVERSHOOT_TOL_S = 0.1


def parse_qvhighlights(
    path: PathLike,
    skip_bad: bool = False,
    report: Optional[ParseReport] = None,
    tol: float = OVERSHOOT_TOL_S,
) -> list[Pair]:
    """Parse a QVHighlights ``highlight_*_release.jsonl`` file."""
    sink = RowSink(path, skip_bad, report)
    for where, text in sink.lines():
        sink.collect(where, lambda: _row(json_row(text), tol, sink.report), id_label="qid")
    return sink.pairs


def _row(row: Any, tol: float, report: ParseReport) -> Pair:
    qid = row_id(field_of(row, "qid"), "qid")
    query = sentence(field_of(row, "query"), "query")
    vid = non_empty_string(field_of(row, "vid"), "vid")
    duration = positive_number(field_of(row, "duration"), "duration")
    windows: tuple[tuple[float, float], ...] = ()
    saliency: tuple[tuple[int, float], ...] = ()
    if "relevant_windows" in row:
        raw = non_empty_list(row["relevant_windows"], "relevant_windows", "[start, end]")
        windows = tuple(
            check_window(*pair_of_numbers(w, f"relevant_windows[{j}]"), duration, tol, report)
            for j, w in enumerate(raw)
        )
        saliency = _saliency(row, duration)
    return Pair(
        video_id=vid.strip(),
        duration=duration,
        query=query,
        windows=windows,
        query_id=qid,
        saliency=saliency,
    )


def _saliency(row: Any, duration: float) -> tuple[tuple[int, float], ...]:
    if "relevant_clip_ids" not in row and "saliency_scores" not in row:
        return ()
    ids = field_of(row, "relevant_clip_ids")
    scores = field_of(row, "saliency_scores")
    if not isinstance(ids, list) or not isinstance(scores, list) or len(ids) != len(scores):
        raise RowError("relevant_clip_ids and saliency_scores: expected two lists of the same length")
    if not ids:
        return ()
    n_clips = int(-(-duration // CLIP_S))
    # Vectorised check of the common well-formed case (160k clips in train);
    # the per-value loop below runs only to name a bad value.
    try:
        id_arr, sc_arr = np.asarray(ids), np.asarray(scores)
    except ValueError:  # ragged lists
        id_arr = sc_arr = np.zeros(0)
    if (
        id_arr.dtype.kind in "iu"
        and sc_arr.dtype.kind in "iuf"
        and sc_arr.ndim == 2
        and sc_arr.shape[1] > 0
        and id_arr.min() >= 0
        and id_arr.max() < n_clips
        and np.isfinite(sc_arr).all()
    ):
        return tuple(zip(id_arr.tolist(), sc_arr.mean(axis=1).tolist()))
    out = []
    for j, (cid, sc) in enumerate(zip(ids, scores)):
        if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid < n_clips:
            raise RowError(f"relevant_clip_ids[{j}]: expected a clip index in 0..{n_clips - 1}, got {cid!r}")
        if not isinstance(sc, list) or not sc:
            raise RowError(f"saliency_scores[{j}]: expected a list of annotator scores, got {sc!r}")
        vals = [number(s, f"saliency_scores[{j}]") for s in sc]
        out.append((cid, sum(vals) / len(vals)))
    return tuple(out)
