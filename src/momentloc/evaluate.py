"""Score a predictions file against annotations, with no model: the standalone evaluator.

Prediction formats read by ``load_predictions`` (chosen by content):

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

``evaluate_predictions`` returns the dataset's metrics (percent) plus
``n_queries`` and ``missing_scored_as_miss``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, Union

from momentloc import metrics_didemo as dd
from momentloc.errors import DataError
from momentloc.files import atomic_write
from momentloc.metrics import IOU_THRESHOLDS, TOP_KS, breakdown_metrics, localization_metrics
from momentloc.metrics_qvh import load_qvh_saliency, qvh_highlight_metrics, qvh_moment_metrics
from momentloc.paths import data_root
from momentloc.types import Moment, Pair

KeyKind = Literal["query_id", "pair_index"]
_QID_KEYS = ("qid", "query_id", "annotation_id")
_DATASETS = {"charades": "charades_sta", "charades_sta": "charades_sta", "tacos": "tacos", "activitynet": "activitynet",
             "anet": "activitynet", "didemo": "didemo", "qvhighlights": "qvhighlights", "qvh": "qvhighlights"}


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


def _as_predictions(pairs: Sequence[Pair], predictions: Any) -> Predictions:
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


def _shorten(keys: Sequence[str], n: int = 5) -> str:
    head = ", ".join(keys[:n])
    return head + (", ..." if len(keys) > n else "")


def _match(pairs: Sequence[Pair], preds: Predictions) -> dict[str, int]:
    """Map each prediction key to its pair's position; unknown keys are an error."""
    if preds.key == "pair_index":
        index = {str(i): i for i in range(len(pairs))}
    else:
        if any(p.query_id is None for p in pairs):
            raise DataError(preds.source, "predictions are keyed by query id but the annotations have none; use pair_index")
        index = {}
        for i, p in enumerate(pairs):
            if index.setdefault(str(p.query_id), i) != i:
                raise DataError(preds.source, f"query id {p.query_id} appears twice in the annotations; use pair_index")
    unknown = sorted(preds.keys() - set(index), key=lambda k: (len(k), k))
    if unknown:
        raise DataError(
            preds.source, f"{len(unknown)} {preds.key} values not in the annotations (first: {_shorten(unknown)})"
        )
    for key, vid in preds.video_ids.items():
        if vid != pairs[index[key]].video_id:
            expected = pairs[index[key]].video_id
            raise DataError(preds.source, f"query {key}: video {vid!r} in predictions, {expected!r} in annotations")
    return index


def _check_windows(
    pair: Pair, key: str, wins: Sequence[tuple[float, float, float]], source: str, tolerance: float, dataset: str
) -> None:
    # Allow up to the annotated end too: some annotation files end past the stated duration.
    bound = max([pair.duration, *(w[1] for w in pair.windows), *(w[1] for w in pair.annotator_windows)])
    if dataset == "didemo":
        bound = max(bound, dd.NUM_CHUNKS * dd.CHUNK_SECONDS)
    for s, e, _ in wins:
        if e < s:
            raise DataError(source, f"query {key}: window [{s:g}, {e:g}]: end before start")
        if s < -tolerance or e > bound + tolerance:
            raise DataError(
                source,
                f"query {key}: window [{s:g}, {e:g}] is outside the video [0, {bound:g}] s (tolerance {tolerance:g} s)",
            )


def evaluate_predictions(
    pairs: Sequence[Pair],
    predictions: Union[Predictions, str, Path, Sequence[Sequence[Moment]]],
    dataset: str,
    *,
    missing: Literal["error", "miss"] = "error",
    tolerance: float = 1.0,
    ks: Sequence[int] = TOP_KS,
    thresholds: Sequence[float] = IOU_THRESHOLDS,
    breakdowns: bool = True,
    qvh_annotations: Union[str, Path, Mapping[str, Any], None] = None,
) -> dict[str, float]:
    """Score predictions (a file, ``Predictions``, or ranked ``Moment`` lists in pair order) with the dataset's protocol.

    ``dataset`` picks the protocol: ``didemo`` (Rank@1/5, mIoU over 21 segments),
    ``qvhighlights`` (mAP, R1, and HL-mAP / HL-HIT@1 when saliency is
    predicted), anything else R@n IoU=m and mIoU. Queries without a
    prediction are an error, or with ``missing="miss"`` score as misses
    (counted in ``missing_scored_as_miss``).
    """
    name = _DATASETS.get(dataset.lower().replace("-", "_"), dataset.lower())
    if missing not in ("error", "miss"):
        raise ValueError(f"missing must be 'error' or 'miss', got {missing!r}")
    preds = _as_predictions(pairs, predictions)
    index = _match(pairs, preds)
    keys = [str(i) if preds.key == "pair_index" else str(p.query_id) for i, p in enumerate(pairs)]
    lacking = [k for k in keys if k not in preds.windows and k not in preds.segments]
    if lacking and missing == "error":
        raise DataError(
            preds.source,
            f"{len(lacking)} of {len(pairs)} queries have no prediction (first {preds.key}: {_shorten(lacking)}); "
            "pass missing='miss' to score them as misses",
        )
    for k in preds.windows:
        _check_windows(pairs[index[k]], k, preds.windows[k], preds.source, tolerance, name)
    result: dict[str, float] = {}
    if name == "didemo":
        rankings, annotators = [], []
        for k, p in zip(keys, pairs):
            wins = p.annotator_windows or p.windows
            if not wins:
                raise DataError(preds.source, f"query {k}: the annotations have no DiDeMo annotator windows")
            annotators.append([dd.window_to_chunks(s, e) for s, e in wins])
            if k in preds.segments:
                rankings.append(dd.complete_ranking(preds.segments[k]))
            elif k in preds.windows:
                rankings.append(dd.moments_to_ranking([Moment(*w) for w in preds.windows[k]], p.duration))
            else:
                rankings.append([])  # a miss: infinite rank, IoU 0
        result.update(dd.didemo_metrics(rankings, annotators))
        # A ranking of fewer than 5 segments is completed with the segments nearest its top-1, which favours Rank@5:
        # say how many were.
        result["completed_rankings"] = sum(1 for k in keys if k in preds.segments and 0 < len(set(preds.segments[k])) < 5)
    else:
        if preds.segments:
            raise DataError(preds.source, f"DiDeMo segment rankings cannot be scored on {name}")
        no_gt = [k for k, p in zip(keys, pairs) if not p.windows]
        if no_gt:
            raise DataError(
                preds.source,
                f"{len(no_gt)} annotated queries have no ground-truth window (first: {_shorten(no_gt)}); "
                "is this a label-free test split?",
            )
        ranked = [preds.windows.get(k, []) for k in keys]
        if name == "qvhighlights":
            result.update(qvh_moment_metrics(ranked, [p.windows for p in pairs]))
            if preds.saliency:
                result.update(_highlights(pairs, keys, preds, missing, qvh_annotations))
        else:
            result.update(localization_metrics(ranked, [p.windows for p in pairs], ks, thresholds))
            if breakdowns:
                result.update(breakdown_metrics(ranked, pairs, ks, thresholds))
    result.pop("n", None)
    result["n_queries"] = len(pairs)
    result["missing_scored_as_miss"] = len(lacking)
    return result


def _highlights(
    pairs: Sequence[Pair], keys: Sequence[str], preds: Predictions, missing: str, annotations: Any
) -> dict[str, float]:
    """HL-mAP / HL-HIT@1 against the raw per-annotator scores of the QVHighlights release file."""
    qids = [str(p.query_id) for p in pairs]
    if annotations is None:
        folder = data_root() / "qvhighlights"
        for split in ("val", "train"):
            candidate = folder / f"highlight_{split}_release.jsonl"
            if candidate.is_file():
                table = load_qvh_saliency(candidate)
                if all(q in table for q in qids):
                    break
        else:
            need = "highlight scores need the QVHighlights release jsonl that holds these queries"
            raise DataError(folder, f"{need} (pass qvh_annotations=)")
    elif isinstance(annotations, Mapping):
        table = {str(k): v for k, v in annotations.items()}
    else:
        table = load_qvh_saliency(annotations)
    absent = [q for q in qids if q not in table]
    if absent:
        source = str(annotations or "QVHighlights annotations")
        raise DataError(source, f"{len(absent)} queries have no saliency annotation (first: {_shorten(absent)})")
    lacking = [k for k in keys if k not in preds.saliency]
    if lacking and missing == "error":
        raise DataError(
            preds.source,
            f"{len(lacking)} queries have no pred_saliency_scores (first: {_shorten(lacking)}); "
            "pass missing='miss' to score them as misses",
        )
    out = qvh_highlight_metrics([preds.saliency.get(k) for k in keys], [table[q] for q in qids])
    out["highlight_missing_scored_as_miss"] = len(lacking)
    return out
