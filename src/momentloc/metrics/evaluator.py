"""Score predictions against annotations, with no model: the standalone evaluator (``momentloc evaluate``).

The dataset table names the protocol (R@n IoU=m, DiDeMo's ranks, QVHighlights' mAP). Predictions are taken
as real systems submit them: a window that ends past the video (a model's 150-s cap on a 128-s video) or
starts before 0 is clipped to the video, and ``clipped_windows`` says how many were. Refused, with one line
that names the file, is only what cannot be scored: values that are not numbers (``load_predictions``),
a window that ends before it starts, query ids the annotations do not hold, and queries without a
prediction unless ``missing="miss"``. ``strict=True`` clips nothing and refuses windows outside the video
by more than ``tolerance`` seconds instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, Union

from momentloc.errors import DataError
from momentloc.metrics import didemo as dd
from momentloc.metrics.predictions import Predictions, as_predictions
from momentloc.metrics.protocol import Protocol, dataset_protocol
from momentloc.metrics.qvhighlights import load_qvh_saliency, qvh_highlight_metrics
from momentloc.paths import data_root
from momentloc.types import Moment, Pair

Window = tuple[float, float, float]


def _name(dataset: str) -> str:
    """The dataset table's name for ``dataset`` (it answers to aliases), else ``dataset`` as given."""
    from momentloc.data.formats import find_dataset  # the table imports the metrics package

    info = find_dataset(dataset)
    return info.name if info is not None else dataset


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


def video_bound(pair: Pair, protocol: Protocol) -> float:
    """The end of the video a pair's windows may reach: its duration, or its annotated end when that is later
    (some annotation files end past the stated duration), and at least DiDeMo's 30 s of chunks."""
    bound = max([pair.duration, *(w[1] for w in pair.windows), *(w[1] for w in pair.annotator_windows)])
    if protocol.evaluator == "didemo":
        bound = max(bound, dd.NUM_CHUNKS * dd.CHUNK_SECONDS)
    return bound


def _check_order(key: str, wins: Sequence[Window], source: str) -> None:
    for s, e, _ in wins:
        if e < s:
            raise DataError(source, f"query {key}: window [{s:g}, {e:g}]: end before start")


def _check_inside(key: str, wins: Sequence[Window], bound: float, source: str, tolerance: float) -> None:
    """``strict``: refuse a window outside [0, bound] by more than ``tolerance`` seconds."""
    for s, e, _ in wins:
        if s < -tolerance or e > bound + tolerance:
            raise DataError(
                source,
                f"query {key}: window [{s:g}, {e:g}] is outside the video [0, {bound:g}] s (tolerance {tolerance:g} s)",
            )


def clip_windows(wins: Sequence[Window], bound: float) -> tuple[list[Window], int]:
    """Windows clipped to [0, bound] (order and scores kept) and how many of them changed."""
    out = [(min(max(s, 0.0), bound), min(max(e, 0.0), bound), score) for s, e, score in wins]
    return out, sum(1 for a, b in zip(wins, out) if a[:2] != b[:2])


def _prepare_windows(
    pairs: Sequence[Pair], index: Mapping[str, int], preds: Predictions, protocol: Protocol, strict: bool,
    tolerance: float,
) -> Optional[int]:
    """Check every predicted window in place; clip it unless ``strict``. Returns the number clipped (None if strict)."""
    clipped = 0
    for key, wins in preds.windows.items():
        _check_order(key, wins, preds.source)
        bound = video_bound(pairs[index[key]], protocol)
        if strict:
            _check_inside(key, wins, bound, preds.source, tolerance)
        else:
            preds.windows[key], n = clip_windows(wins, bound)
            clipped += n
    return None if strict else clipped


def _didemo(pairs: Sequence[Pair], keys: Sequence[str], preds: Predictions, protocol: Protocol) -> dict[str, float]:
    """Rank@k and mIoU from segment rankings or windows in seconds, plus ``completed_rankings``."""
    rankings, annotators = [], []
    for k, p in zip(keys, pairs):
        if not (p.annotator_windows or p.windows):
            raise DataError(preds.source, f"query {k}: the annotations have no DiDeMo annotator windows")
        annotators.append(dd.annotator_chunks(p))
        if k in preds.segments:
            rankings.append(dd.complete_ranking(preds.segments[k]))
        elif k in preds.windows:
            rankings.append(dd.moments_to_ranking([Moment(*w) for w in preds.windows[k]], p.duration))
        else:
            rankings.append([])  # a miss: infinite rank, IoU 0
    result = dd.didemo_metrics(rankings, annotators, protocol.ks)
    # A ranking of fewer than 5 segments is completed with the segments nearest its top-1, which favours Rank@5:
    # say how many were.
    result["completed_rankings"] = sum(1 for k in keys if k in preds.segments and 0 < len(set(preds.segments[k])) < 5)
    return result


def evaluate_predictions(
    pairs: Sequence[Pair],
    predictions: Union[Predictions, str, Path, Sequence[Sequence[Moment]]],
    dataset: str,
    *,
    missing: Literal["error", "miss"] = "error",
    strict: bool = False,
    tolerance: float = 1.0,
    ks: Optional[Sequence[int]] = None,
    thresholds: Optional[Sequence[float]] = None,
    breakdowns: bool = True,
    qvh_annotations: Union[str, Path, Mapping[str, Any], None] = None,
) -> dict[str, float]:
    """Score predictions (a file, ``Predictions``, or ranked ``Moment`` lists in pair order) with the dataset's protocol.

    ``dataset`` (a name or alias of the dataset table) picks the protocol: ``didemo`` (Rank@1/5, mIoU over 21
    segments), ``qvhighlights`` (mAP, R1, and HL-mAP / HL-HIT@1 when saliency is predicted), the others R@n
    IoU=m and mIoU; ``ks`` / ``thresholds`` replace the protocol's. Queries without a prediction are an error,
    or with ``missing="miss"`` score as misses (counted in ``missing_scored_as_miss``). Windows past the video
    are clipped to it (counted in ``clipped_windows``), or with ``strict`` refused beyond ``tolerance`` seconds.
    """
    protocol = dataset_protocol(dataset).with_options(ks, thresholds)
    if missing not in ("error", "miss"):
        raise ValueError(f"missing must be 'error' or 'miss', got {missing!r}")
    preds = as_predictions(pairs, predictions)
    index = _match(pairs, preds)
    keys = [str(i) if preds.key == "pair_index" else str(p.query_id) for i, p in enumerate(pairs)]
    lacking = [k for k in keys if k not in preds.windows and k not in preds.segments]
    if lacking and missing == "error":
        raise DataError(
            preds.source,
            f"{len(lacking)} of {len(pairs)} queries have no prediction (first {preds.key}: {_shorten(lacking)}); "
            "pass missing='miss' to score them as misses",
        )
    clipped = _prepare_windows(pairs, index, preds, protocol, strict, tolerance)
    if protocol.evaluator == "didemo":
        result = _didemo(pairs, keys, preds, protocol)
    else:
        if preds.segments:
            raise DataError(preds.source, f"DiDeMo segment rankings cannot be scored on {_name(dataset)}")
        no_gt = [k for k, p in zip(keys, pairs) if not p.windows]
        if no_gt:
            raise DataError(
                preds.source,
                f"{len(no_gt)} annotated queries have no ground-truth window (first: {_shorten(no_gt)}); "
                "is this a label-free test split?",
            )
        moments = [[Moment(*w) for w in preds.windows.get(k, [])] for k in keys]
        result = protocol.score(pairs, moments, breakdowns, monitored=False)
        if protocol.evaluator == "qvhighlights" and preds.saliency:
            result.update(_highlights(pairs, keys, preds, missing, qvh_annotations))
    result.pop("n", None)
    result["n_queries"] = len(pairs)
    result["missing_scored_as_miss"] = len(lacking)
    if clipped is not None:
        result["clipped_windows"] = clipped
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
