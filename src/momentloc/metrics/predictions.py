"""Prediction files: reading the formats that systems submit, and writing format (a).

Formats read by ``load_predictions`` (chosen by content):

(a) QVHighlights / Moment-DETR submission jsonl: one row per query with ``qid``
    (or ``pair_index``), ``vid``, ``query``, ``pred_relevant_windows`` =
    [[start, end, score], ...] and optionally ``pred_saliency_scores``.
(b) Plain rows, as CSV with a header or as jsonl: ``video_id`` (optional),
    ``query_id`` or ``pair_index``, ``start``, ``end``, ``score``; several rows
    of a query form its ranked list (sorted by score, highest first).
(c) DiDeMo rankings (.json): a list, in the annotation file's order, of ranked
    lists of segment indices 0..20 or [start_chunk, end_chunk] pairs; or a
    dict from query id to such a list; or jsonl rows with ``qid`` /
    ``query_id`` / ``pair_index`` and ``segments``.

Reading checks that every value can be scored (numbers, known segments, one
row per query); ``momentloc.metrics.evaluator`` matches the predictions to the
annotations and scores them.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, Union

from momentloc.errors import DataError
from momentloc.files import atomic_write
from momentloc.metrics import didemo as dd
from momentloc.types import Moment, Pair

KeyKind = Literal["query_id", "pair_index"]
_QID_KEYS = ("qid", "query_id", "annotation_id")



@dataclass
class Predictions:
    """Predictions keyed by query id or by pair index (as strings); windows ranked best first."""

    key: KeyKind
    windows: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    segments: dict[str, list[int]] = field(default_factory=dict)
    saliency: dict[str, list[float]] = field(default_factory=dict)
    video_ids: dict[str, str] = field(default_factory=dict)
    source: str = "<predictions>"

    def keys(self) -> set[str]:
        """Every query key that has a prediction of any kind."""
        return set(self.windows) | set(self.segments) | set(self.saliency)


def _num(value: Any, path: Path, where: str, what: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(path, f"{what} must be a number, got {value!r}", where) from None
    if math.isnan(out) or math.isinf(out):
        raise DataError(path, f"{what} must be finite, got {value!r}", where)
    return out


def _items(value: Any, path: Path, where: str, what: str) -> list[Any]:
    """A JSON list, or a DataError saying a list was expected."""
    if not isinstance(value, list):
        raise DataError(path, f"{what} must be a list, got {value!r}"[:200], where)
    return value


def _text(path: Path) -> str:
    """The file as UTF-8 text; a DataError names the line of the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(path, f"not UTF-8: byte 0x{data[err.start]:02x} cannot be decoded", f"line {line}") from None


def _segment_index(item: Any, path: Path, where: str) -> int:
    if isinstance(item, (list, tuple)) and len(item) == 2:
        pair = (int(_num(item[0], path, where, "start chunk")), int(_num(item[1], path, where, "end chunk")))
        if pair not in dd.SEGMENT_INDEX:
            raise DataError(path, f"{list(item)} is not a DiDeMo segment (need 0 <= start <= end <= 5)", where)
        return dd.SEGMENT_INDEX[pair]
    idx = _num(item, path, where, "segment index")
    if idx != int(idx) or not 0 <= idx < len(dd.DIDEMO_SEGMENTS):
        raise DataError(path, f"segment index must be an integer in 0..20, got {item!r}", where)
    return int(idx)


def _row_key(row: Mapping[str, Any], path: Path, where: str) -> tuple[KeyKind, str]:
    for name in _QID_KEYS:
        if row.get(name) not in (None, ""):
            return "query_id", str(row[name]).strip()
    if row.get("pair_index") not in (None, ""):
        idx = _num(row["pair_index"], path, where, "pair_index")
        if idx != int(idx) or idx < 0:
            raise DataError(path, f"pair_index must be a non-negative integer, got {row['pair_index']!r}", where)
        return "pair_index", str(int(idx))
    raise DataError(path, "row has no qid / query_id / pair_index", where)


def _add_row(preds: Predictions, row: Mapping[str, Any], path: Path, where: str, seen: dict[str, str]) -> None:
    kind, key = _row_key(row, path, where)
    if preds.key != kind and (preds.windows or preds.segments or preds.saliency):
        raise DataError(path, f"mixes {preds.key} and {kind} keys", where)
    preds.key = kind
    vid = row.get("vid", row.get("video_id"))
    if vid not in (None, ""):
        if preds.video_ids.setdefault(key, str(vid)) != str(vid):
            raise DataError(path, f"query {key} has rows for two videos ({preds.video_ids[key]!r}, {vid!r})", where)
    if "pred_relevant_windows" in row or "segments" in row or "pred_saliency_scores" in row:
        if key in seen:
            raise DataError(path, f"duplicate query {key} (also at {seen[key]})", where)
        seen[key] = where
    if "pred_relevant_windows" in row:
        wins = []
        for w in row["pred_relevant_windows"] or []:
            if not isinstance(w, (list, tuple)) or len(w) < 3:
                raise DataError(path, f"query {key}: each window must be [start, end, score], got {w!r}", where)
            wins.append(tuple(_num(v, path, where, n) for v, n in zip(w[:3], ("start", "end", "score"))))
        preds.windows[key] = wins
    elif "segments" in row:
        preds.segments[key] = [_segment_index(s, path, where) for s in _items(row["segments"], path, where, "segments")]
    elif "start" in row or "end" in row:
        win = tuple(_num(row.get(n), path, where, n) for n in ("start", "end", "score"))
        preds.windows.setdefault(key, []).append(win)  # type: ignore[arg-type]
    elif "pred_saliency_scores" not in row:
        raise DataError(path, "row has none of pred_relevant_windows, start/end/score, segments", where)
    if "pred_saliency_scores" in row:
        scores = _items(row["pred_saliency_scores"], path, where, "pred_saliency_scores")
        preds.saliency[key] = [_num(v, path, where, "saliency score") for v in scores]


def _rank(preds: Predictions) -> Predictions:
    for key, wins in preds.windows.items():
        preds.windows[key] = sorted(wins, key=lambda w: -w[2])  # stable: ties keep file order
    return preds


def load_predictions(path: Union[str, Path]) -> Predictions:
    """Read a predictions file in format (a), (b) or (c); errors are one-line ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "predictions file not found")
    preds = Predictions(key="query_id", source=str(path))
    seen: dict[str, str] = {}
    text = _text(path)
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        fields = set(reader.fieldnames or [])
        if not {"start", "end", "score"} <= fields:
            need = "CSV header needs start, end, score and query_id or pair_index"
            raise DataError(path, f"{need}; got {sorted(fields)}", "line 1")
        for n, row in enumerate(reader, 2):
            clean = {k.strip(): v.strip() if isinstance(v, str) else v for k, v in row.items() if k}
            _add_row(preds, clean, path, f"line {n}", seen)
        return _rank(preds)
    stripped = text.lstrip()
    if stripped.startswith("[") or (path.suffix.lower() == ".json" and stripped.startswith("{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON ({exc.msg})", f"line {exc.lineno}") from None
        except RecursionError:
            raise DataError(path, "JSON nested too deeply to read (expected rankings or rows of numbers)") from None
        if isinstance(data, dict):
            preds.key = "query_id"
            for key, ranking in data.items():
                ranked = _items(ranking, path, f"key {key}", "a ranking")
                preds.segments[str(key)] = [_segment_index(s, path, f"key {key}") for s in ranked]
            return preds
        if all(isinstance(r, list) for r in data):
            preds.key = "pair_index"
            for i, ranking in enumerate(data):
                preds.segments[str(i)] = [_segment_index(s, path, f"item {i}") for s in ranking]
            return preds
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise DataError(path, f"expected an object, got {type(row).__name__}", f"item {i}")
            _add_row(preds, row, path, f"item {i}", seen)
        return _rank(preds)
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON ({exc.msg})", f"line {n}") from None
        if not isinstance(row, dict):
            raise DataError(path, f"expected a JSON object per line, got {type(row).__name__}", f"line {n}")
        _add_row(preds, row, path, f"line {n}", seen)
    return _rank(preds)


def _qid_value(query_id: str) -> Union[int, str]:
    # The official QVHighlights evaluator compares qids with the release's ints.
    return int(query_id) if query_id.isdigit() else query_id


def write_predictions_jsonl(
    path: Union[str, Path],
    pairs: Sequence[Pair],
    moments: Sequence[Sequence[Moment]],
    saliency: Optional[Sequence[Optional[Sequence[float]]]] = None,
) -> None:
    """Write format (a) (``qid`` = ``Pair.query_id``, else ``pair_index``) atomically: temp file, fsync, rename."""
    if len(pairs) != len(moments) or (saliency is not None and len(saliency) != len(pairs)):
        raise ValueError(f"{len(pairs)} pairs but {len(moments)} prediction lists")
    with atomic_write(path, "w") as fh:
        for i, (pair, row) in enumerate(zip(pairs, moments)):
            rec: dict[str, Any] = {"qid": _qid_value(pair.query_id)} if pair.query_id is not None else {"pair_index": i}
            rec.update(query=pair.query, vid=pair.video_id, pred_relevant_windows=[m.as_list() for m in row])
            if saliency is not None and saliency[i] is not None:
                rec["pred_saliency_scores"] = [float(v) for v in saliency[i]]
            fh.write(json.dumps(rec) + "\n")


def as_predictions(pairs: Sequence[Pair], predictions: Any) -> Predictions:
    """A predictions file, ``Predictions``, or ranked ``Moment`` lists in pair order, as ``Predictions``."""
    if isinstance(predictions, Predictions):
        return predictions
    if isinstance(predictions, (str, Path)):
        return load_predictions(predictions)
    if len(predictions) != len(pairs):
        raise ValueError(f"{len(predictions)} prediction lists for {len(pairs)} pairs")
    out = Predictions(key="pair_index", source="<in-memory predictions>")
    for i, row in enumerate(predictions):
        out.windows[str(i)] = [(float(m.start), float(m.end), float(m.score)) for m in row]
    return _rank(out)
