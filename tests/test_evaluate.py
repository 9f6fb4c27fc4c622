"""The standalone evaluator: prediction formats, one-line errors, and scores on the shipped annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from momentloc.data import formats
from momentloc.errors import DataError
from momentloc.metrics import didemo as dd
from momentloc.metrics.evaluator import evaluate_predictions
from momentloc.metrics.predictions import load_predictions, write_predictions_jsonl
from momentloc.types import Moment, Pair

PAIRS = [
    Pair("va", 30.0, "a person opens a door", ((0.0, 10.0),), query_id="q0"),
    Pair("vb", 40.0, "a person sits down", ((10.0, 20.0),), query_id="q1"),
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


def test_csv_rows_are_ranked_by_score(tmp_path: Path) -> None:
    f = write(
        tmp_path / "p.csv",
        "video_id,query_id,start,end,score\n"
        "va,q0,0,5,0.2\n"  # IoU 0.5, ranked second
        "va,q0,0,10,0.9\n"  # IoU 1, ranked first
        "vb,q1,0,10,0.5\n",  # IoU 0
    )
    preds = load_predictions(f)
    assert preds.key == "query_id" and preds.windows["q0"][0] == (0.0, 10.0, 0.9)
    m = evaluate_predictions(PAIRS, f, "charades_sta", breakdowns=False)
    assert m["R1@0.7"] == 50.0 and m["mIoU"] == pytest.approx(50.0)
    assert m["n_queries"] == 2 and m["missing_scored_as_miss"] == 0


def test_jsonl_rows_by_pair_index(tmp_path: Path) -> None:
    rows = [{"pair_index": 1, "start": 10, "end": 20, "score": 1}, {"pair_index": 0, "start": 0, "end": 10, "score": 1}]
    f = jsonl(tmp_path / "p.jsonl", rows)
    m = evaluate_predictions(PAIRS, f, "tacos", breakdowns=False)
    assert m["R1@0.7"] == 100.0


def test_write_then_evaluate_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "preds.jsonl"
    write_predictions_jsonl(out, PAIRS, [[Moment(0, 10, 0.9)], [Moment(10, 20, 0.8), Moment(0, 5, 0.1)]])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["qid"] == "q0" and rows[1]["pred_relevant_windows"][1] == [0.0, 5.0, 0.1]
    assert [p.name for p in out.parent.iterdir()] == ["preds.jsonl"]  # no temp file left behind
    assert evaluate_predictions(PAIRS, out, "activitynet", breakdowns=False)["R1@0.7"] == 100.0


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "preds.jsonl"
    write_predictions_jsonl(out, PAIRS, [[Moment(0, 10, 0.9)], []])
    before = out.read_text()
    with pytest.raises(TypeError):
        write_predictions_jsonl(out, PAIRS, [[Moment(0, 10, 0.9)], [Moment(0, 1, object())]])  # type: ignore[arg-type]
    assert out.read_text() == before and len(list(tmp_path.iterdir())) == 1


def test_missing_queries_error_or_miss(tmp_path: Path) -> None:
    f = jsonl(tmp_path / "p.jsonl", [{"qid": "q0", "vid": "va", "pred_relevant_windows": [[0, 10, 1.0]]}])
    with pytest.raises(DataError, match=r"1 of 2 queries have no prediction \(first query_id: q1\)"):
        evaluate_predictions(PAIRS, f, "charades_sta")
    m = evaluate_predictions(PAIRS, f, "charades_sta", missing="miss", breakdowns=False)
    assert m["missing_scored_as_miss"] == 1 and m["R1@0.5"] == 50.0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"qid": "q9", "pred_relevant_windows": [[0, 1, 1]]}], r"1 query_id values not in the annotations \(first: q9\)"),
        (
            [{"qid": "q0", "pred_relevant_windows": [[0, 1, 1]]}, {"qid": "q0", "pred_relevant_windows": []}],
            r"line 2: duplicate query q0 \(also at line 1\)",
        ),
        ([{"qid": "q0", "pred_relevant_windows": [[12, 5, 1]]}], r"query q0: window \[12, 5\]: end before start"),
        ([{"qid": "q0", "pred_relevant_windows": [[0, 5, "high"]]}], r"line 1: score must be a number, got 'high'"),
        ([{"qid": "q0", "pred_relevant_windows": [[0, 5, float("nan")]]}], r"score must be finite"),
        (
            [{"qid": "q0", "vid": "vb", "pred_relevant_windows": [[0, 5, 1]]}],
            r"query q0: video 'vb' in predictions, 'va' in annotations",
        ),
        ([{"qid": "q0", "pred_relevant_windows": [[0, 5]]}], r"each window must be \[start, end, score\]"),
        ([{"video": "va", "start": 0}], r"row has no qid / query_id / pair_index"),
    ],
)
def test_bad_prediction_files_give_one_line_errors(tmp_path: Path, rows: list[dict], message: str) -> None:
    f = jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(DataError, match=message) as err:
        evaluate_predictions(PAIRS, f, "charades_sta", missing="miss")
    assert "\n" not in str(err.value) and str(f) in str(err.value)


def test_windows_past_the_video_are_clipped_and_counted(tmp_path: Path) -> None:
    # A 150-s cap on a 30-s and a 40-s video, as published prediction files hold.
    f = jsonl(tmp_path / "p.jsonl", [
        {"qid": "q0", "pred_relevant_windows": [[0, 150, 0.9], [-2, 10, 0.5]]},  # -> [0, 30], [0, 10]
        {"qid": "q1", "pred_relevant_windows": [[10, 20, 0.8], [35, 150, 0.7]]},  # -> [10, 20], [35, 40]
    ])
    m = evaluate_predictions(PAIRS, f, "charades_sta")
    assert m["clipped_windows"] == 3
    # q0's top-1 [0, 30] against [0, 10]: IoU 1/3; its second [0, 10]: 1. q1's top-1 is exact.
    assert m["R1@0.3"] == 100.0 and m["R1@0.5"] == 50.0 and m["R5@0.7"] == 100.0
    assert m["mIoU"] == pytest.approx(100 * (1 / 3 + 1) / 2)


def test_strict_refuses_windows_outside_the_video(tmp_path: Path) -> None:
    f = jsonl(tmp_path / "p.jsonl", [{"qid": "q0", "pred_relevant_windows": [[0, 45, 1]]}])
    with pytest.raises(DataError, match=r"query q0: window \[0, 45\] is outside the video \[0, 30\] s") as err:
        evaluate_predictions(PAIRS, f, "charades_sta", missing="miss", strict=True)
    assert "\n" not in str(err.value) and str(f) in str(err.value)
    # Inside the tolerance, strict scores the window as it is; the default clips it to the video.
    f = jsonl(tmp_path / "p.jsonl", [{"qid": "q0", "pred_relevant_windows": [[0, 30.5, 1]]}])
    strict = evaluate_predictions(PAIRS, f, "charades_sta", missing="miss", strict=True)
    clipped = evaluate_predictions(PAIRS, f, "charades_sta", missing="miss")
    assert "clipped_windows" not in strict and clipped["clipped_windows"] == 1
    assert strict["mIoU"] == pytest.approx(100 * 10 / 30.5 / 2) and clipped["mIoU"] == pytest.approx(100 * 10 / 30 / 2)


def test_cli_clips_by_default_and_refuses_with_strict(capsys, tmp_path: Path) -> None:
    """A 128-s video in the QVHighlights release format and a model's 150-s cap, as published files hold."""
    from clirun import run_cli

    jsonl(tmp_path / "highlight_val_release.jsonl", [
        {"qid": 7, "query": "a man cooks", "duration": 128, "vid": "abc_0.0_128.0", "relevant_windows": [[100, 128]],
         "relevant_clip_ids": [50, 51], "saliency_scores": [[4, 4, 4], [3, 4, 2]]},
    ])
    preds = jsonl(tmp_path / "preds.jsonl", [{"qid": 7, "vid": "abc_0.0_128.0",
                                              "pred_relevant_windows": [[100, 150, 0.9], [0, 20, 0.1]]}])
    args = ["evaluate", "--dataset", "qvh", "--split", "val", "--predictions", preds, "--root", tmp_path]
    res = run_cli(capsys, [*args, "--out", tmp_path / "m.json"])
    assert res.code == 0, res.err
    assert "note: 1 window past the video clipped to it" in res.out
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["clipped_windows"] == 1 and m["R1@0.7"] == 100.0 and m["mAP"] == pytest.approx(100.0)
    res = run_cli(capsys, [*args, "--strict"])
    assert res.code != 0 and len(res.err_lines) == 1
    assert "query 7: window [100, 150] is outside the video [0, 128] s" in res.err_lines[0]


def test_what_cannot_be_scored_is_refused_also_when_clipping(tmp_path: Path) -> None:
    for row, message in (
        ({"qid": "q0", "pred_relevant_windows": [[150, 140, 1]]}, r"window \[150, 140\]: end before start"),
        ({"qid": "q0", "pred_relevant_windows": [[0, "end", 1]]}, r"end must be a number"),
        ({"qid": "q7", "pred_relevant_windows": [[0, 150, 1]]}, r"query_id values not in the annotations"),
    ):
        with pytest.raises(DataError, match=message):
            evaluate_predictions(PAIRS, jsonl(tmp_path / "p.jsonl", [row]), "charades_sta", missing="miss")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: invalid JSON"):
        load_predictions(write(tmp_path / "p.jsonl", '{"qid": "q0", "pred_relevant_windows": []}\n{oops\n'))
    with pytest.raises(DataError, match=r"CSV header needs start, end, score"):
        load_predictions(write(tmp_path / "p.csv", "qid,begin,finish\nq0,0,1\n"))
    with pytest.raises(DataError, match="not found"):
        load_predictions(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match="keyed by query id but the annotations have none"):
        f = write(tmp_path / "q.csv", "qid,start,end,score\nx,0,1,1\n")
        evaluate_predictions([Pair("va", 30.0, "q", ((0.0, 1.0),))], f, "tacos")


DIDEMO_PAIRS = [
    Pair(
        "v0", 30.0, "a", ((0.0, 5.0),), query_id="7",
        annotator_windows=((0.0, 5.0), (0.0, 5.0), (5.0, 10.0), (15.0, 25.0)),
    ),
    Pair("v1", 25.0, "b", ((10.0, 20.0),), query_id="8", annotator_windows=((10.0, 20.0),) * 4),
]


def test_didemo_rankings_all_formats(tmp_path: Path) -> None:
    idx = dd.SEGMENT_INDEX
    as_list = write(tmp_path / "r.json", json.dumps([[idx[(0, 0)], idx[(1, 1)]], [[2, 2], [2, 3]]]))
    m = evaluate_predictions(DIDEMO_PAIRS, as_list, "didemo")
    # Query 7: ranks 1, 1, 2 -> 4/3, IoU 2/3. Query 8: rank 2, IoU of (2,2) with (2,3) = 1/2.
    assert m["Rank@1"] == 0.0 and m["Rank@5"] == 100.0 and m["mIoU"] == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)
    as_dict = write(tmp_path / "d.json", json.dumps({"7": [[0, 0]], "8": [[2, 3]]}))
    m = evaluate_predictions(DIDEMO_PAIRS, as_dict, "didemo")
    assert m["mIoU"] == pytest.approx(100 * (2 / 3 + 1) / 2) and m["Rank@1"] == 50.0
    rows = jsonl(tmp_path / "s.jsonl", [{"qid": "7", "segments": [0]}, {"qid": "8", "segments": [idx[(2, 3)]]}])
    assert evaluate_predictions(DIDEMO_PAIRS, rows, "didemo") == m
    # Windows in seconds map to the nearest segment; [10, 25] in a 25-s video is chunks 2..4.
    secs = [[Moment(0.4, 5.2, 1.0)], [Moment(10.0, 19.0, 1.0)]]
    assert evaluate_predictions(DIDEMO_PAIRS, secs, "didemo")["mIoU"] == pytest.approx(m["mIoU"])
    with pytest.raises(DataError, match=r"\[3, 1\] is not a DiDeMo segment"):
        load_predictions(write(tmp_path / "bad.json", json.dumps([[[3, 1]]])))
    with pytest.raises(DataError, match="integer in 0..20"):
        load_predictions(write(tmp_path / "bad2.json", json.dumps([[21]])))


def test_qvh_highlights_from_annotation_file(tmp_path: Path) -> None:
    ann = jsonl(tmp_path / "gt.jsonl", [{
        "qid": 5, "query": "x", "duration": 6, "vid": "v", "relevant_windows": [[0, 4]],
        "relevant_clip_ids": [0, 1], "saliency_scores": [[4, 0, 0], [3, 3, 3]],
    }])
    pairs = [Pair("v", 6.0, "x", ((0.0, 4.0),), query_id="5")]
    sub = tmp_path / "sub.jsonl"
    write_predictions_jsonl(sub, pairs, [[Moment(0, 4, 1.0)]], saliency=[[0.9, 0.1, 0.5]])
    assert json.loads(sub.read_text())["qid"] == 5  # digit ids are written as ints, as the release has them
    m = evaluate_predictions(pairs, sub, "qvhighlights", qvh_annotations=ann)
    assert m["mAP"] == 100.0 and m["R1@0.7"] == 100.0
    assert m["HL-HIT@1"] == 100.0 and m["HL-mAP"] == pytest.approx(100 / 3)
    assert m["highlight_missing_scored_as_miss"] == 0


# ------------------------------------------------------------- shipped annotations


@pytest.mark.realdata
def test_didemo_oracle_file_matches_known_bound(tmp_path: Path, need_file) -> None:
    need_file("didemo/test_data.json")
    pairs = formats.load_pairs("didemo", "test")
    rankings = [dd.oracle_ranking([dd.window_to_chunks(s, e) for s, e in p.annotator_windows]) for p in pairs]
    f = write(tmp_path / "oracle.json", json.dumps([[list(dd.DIDEMO_SEGMENTS[s]) for s in r] for r in rankings]))
    m = evaluate_predictions(pairs, f, "didemo")
    assert (round(m["Rank@1"], 2), round(m["Rank@5"], 2), round(m["mIoU"], 2)) == (74.76, 100.0, 96.05)


@pytest.mark.realdata
def test_charades_perfect_csv(tmp_path: Path, need_file) -> None:
    need_file("charades_sta/charades_sta_test.txt")
    pairs = formats.load_pairs("charades_sta", "test")
    rows = [f"{p.video_id},{p.query_id},{p.window[0]},{p.window[1]},1" for p in pairs]
    lines = ["video_id,query_id,start,end,score", *rows]
    m = evaluate_predictions(pairs, write(tmp_path / "p.csv", "\n".join(lines) + "\n"), "charades_sta")
    assert m["R1@0.7"] == 100.0 and m["mIoU"] == pytest.approx(100.0) and m["n_queries"] == 3720


@pytest.mark.realdata
def test_qvh_val_submission_round_trip(tmp_path: Path, need_file) -> None:
    need_file("qvhighlights/highlight_val_release.jsonl")
    pairs = formats.load_pairs("qvhighlights", "val")
    moments = [[Moment(s, e, 1.0) for s, e in p.windows] for p in pairs]
    # Mean annotator score per relevant clip, 0 elsewhere.
    saliency = []
    for p in pairs:
        clips = np.zeros(int(p.duration // 2))
        for c, v in p.saliency:
            clips[c] = v
        saliency.append(clips.tolist())
    sub = tmp_path / "val_preds.jsonl"
    write_predictions_jsonl(sub, pairs, moments, saliency)
    m = evaluate_predictions(pairs, sub, "qvhighlights")
    assert m["R1@0.5"] == 100.0 and m["R1@0.7"] == 100.0
    assert 99.0 < m["mAP"] <= 100.0  # only the first 10 windows count: 13 queries have more
    assert m["HL-HIT@1"] > 50.0 and 0.0 < m["HL-mAP"] < 100.0
