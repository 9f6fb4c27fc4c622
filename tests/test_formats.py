"""Annotation parsers on the real shipped files (counts, units, point labels) and on tiny bad files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from momentloc.data.formats import (
    DATASETS,
    ParseReport,
    SkippedRowWarning,
    guess_format,
    load_annotation_file,
    load_pairs,
)
from momentloc.data.points import points_outside
from momentloc.errors import ConfigError, DataError

COUNTS = [
    ("charades_sta", "train", 12408),
    ("charades_sta", "test", 3720),
    ("tacos", "train", 9790),
    ("tacos", "val", 4436),
    ("tacos", "test", 4001),
    ("activitynet", "train", 37421),
    ("activitynet", "val_1", 17505),
    ("activitynet", "val_2", 17031),
    ("didemo", "val", 4180),
    ("didemo", "test", 4021),
    ("qvhighlights", "train", 7218),
    ("qvhighlights", "val", 1550),
    ("qvhighlights", "test", 1542),
]
SHIPPED = {name: info for name, info in DATASETS.items() if info.generator is None}
GLANCE_SPLITS = [(d, s) for d, info in SHIPPED.items() for s in info.glance]


@lru_cache(maxsize=None)
def _load(root: str, dataset: str, split: str, glance: bool = False) -> tuple[list, ParseReport]:
    # Each big file is parsed once per test session.
    report = ParseReport()
    pairs = load_pairs(dataset, split, root=Path(root) / DATASETS[dataset].folder, glance=glance, report=report)
    return pairs, report


@lru_cache(maxsize=None)
def _load_file(path: str) -> list:
    return load_annotation_file(Path(path))


def load(real_data: Path, dataset: str, split: str, glance: bool = False):
    """(pairs, report) of a shipped split, cached."""
    return _load(str(real_data), dataset, split, glance)


@pytest.mark.realdata
@pytest.mark.parametrize("dataset,split,n", COUNTS)
def test_shipped_split_counts_and_invariants(real_data: Path, dataset: str, split: str, n: int) -> None:
    pairs, report = load(real_data, dataset, split)
    assert len(pairs) == n
    assert report.rows == n and report.skipped == []
    assert len({p.query_id for p in pairs}) == n
    unlabelled = DATASETS[dataset].facts.get("unlabelled_splits", ())
    for p in pairs:
        assert p.duration > 0 and p.query and p.query == p.query.strip()
        if split in unlabelled:
            assert p.windows == ()
            continue
        assert p.windows
        for s, e in p.windows:
            assert 0 <= s <= e <= p.duration


@pytest.mark.realdata
@pytest.mark.parametrize("dataset,split", GLANCE_SPLITS)
def test_viga_glance_files_match_annotations_and_points_lie_inside(real_data: Path, dataset: str, split: str) -> None:
    pairs, report = load(real_data, dataset, split, glance=True)
    base, _ = load(real_data, dataset, split)
    assert len(pairs) == len(base)
    assert points_outside(pairs) == []
    for p, b in zip(pairs, base):
        assert (p.query_id, p.query, p.windows, p.duration) == (b.query_id, b.query, b.windows, b.duration)
    # Points inside the raw window but past the video end are clipped with the window.
    expected_clipped = {("charades_sta", "train"): 249, ("charades_sta", "test"): 82, ("tacos", "train"): 4}
    assert report.clipped_points == expected_clipped.get((dataset, split), 0)


def _match_cfmr(viga: list, cfmr: list) -> int:
    """Walk CFMR rows as an ordered subsequence of ViGA's and compare every value; returns the matches."""
    j = 0
    for v in viga:
        if j < len(cfmr) and (cfmr[j].video_id, cfmr[j].query) == (v.video_id, v.query):
            c = cfmr[j]
            # Plain comparisons: pytest.approx is slow over tens of thousands of rows.
            assert abs(c.point - v.point) < 1e-6, (c, v)
            assert max(abs(a - b) for a, b in zip(c.windows[0], v.windows[0])) < 1e-6, (c, v)
            assert abs(c.duration - v.duration) < 1e-6, (c, v)
            j += 1
    return j


@pytest.mark.realdata
@pytest.mark.parametrize(
    "dataset,split,n_cfmr",
    [("charades_sta", "train", 12354), ("charades_sta", "test", 3712), ("tacos", "train", 9790),
     ("tacos", "val", 4436), ("tacos", "test", 4001), ("activitynet", "val_2", 17031)],
)
def test_cfmr_glance_agrees_with_viga(real_data: Path, dataset: str, split: str, n_cfmr: int) -> None:
    info = DATASETS[dataset]
    cfmr = _load_file(str(real_data / info.folder / info.cfmr_glance[split]))
    viga, _ = load(real_data, dataset, split, glance=True)
    assert len(cfmr) == n_cfmr
    assert _match_cfmr(viga, cfmr) == n_cfmr
    if n_cfmr == len(viga):
        assert [p.video_id for p in cfmr] == [p.video_id for p in viga]


@pytest.mark.realdata
def test_cfmr_debug_file_is_the_first_train_rows(need_file) -> None:
    debug = _load_file(str(need_file("charades_sta/glance/glance_debug_charades.json")))
    train = _load_file(str(need_file("charades_sta/glance/glance_train_charades.json")))
    assert len(debug) == 1000 and debug == train[:1000]


@pytest.mark.realdata
def test_tacos_frames_to_seconds_by_hand(real_data: Path) -> None:
    pairs, _ = load(real_data, "tacos", "train", glance=True)
    p = next(x for x in pairs if x.query_id == "s17-d69.avi#0")
    # "s17-d69.avi": timestamps[0] = [224, 358], glance[0] = 329, fps 29.4, num_frames 12438
    assert p.query == "He took out a pan"
    assert p.duration == pytest.approx(12438 / 29.4) == pytest.approx(423.0612244898)
    assert p.windows == (pytest.approx((7.6190476190, 12.1768707483)),)
    assert p.point == pytest.approx(11.1904761905)


@pytest.mark.realdata
def test_didemo_chunks_to_seconds_by_hand(real_data: Path) -> None:
    pairs, _ = load(real_data, "didemo", "val")
    by_id = {p.query_id: p for p in pairs}
    p = by_id["49152"]  # times [[1,1],[1,1],[1,1],[0,0]], num_segments 6
    assert p.duration == 30.0 and p.query == "the man in the hat briefly bends over the machine"
    assert p.annotator_windows == ((5.0, 10.0), (5.0, 10.0), (5.0, 10.0), (0.0, 5.0))
    assert p.windows == ((5.0, 10.0),)
    q = by_id["49158"]  # times [[4,4]] x 4, num_segments 5: the last chunk of a 25-s video
    assert q.duration == 25.0 and q.windows == ((20.0, 25.0),)


@pytest.mark.realdata
def test_qvhighlights_windows_and_saliency(real_data: Path) -> None:
    pairs, _ = load(real_data, "qvhighlights", "train")
    p = next(x for x in pairs if x.query_id == "5263")
    assert p.video_id == "qtyBzFV9yTs_60.0_210.0" and p.duration == 150.0
    assert p.windows == ((0.0, 30.0), (78.0, 110.0))
    assert len(p.saliency) == 31
    assert p.saliency[0] == (0, 3.0) and p.saliency[2] == (2, pytest.approx(10 / 3))
    assert p.saliency[-1] == (54, pytest.approx(7 / 3))


@pytest.mark.realdata
def test_documented_repairs_of_shipped_rows(real_data: Path) -> None:
    charades, rep = load(real_data, "charades_sta", "train")
    assert len(rep.repaired) == 4 and all("reversed" in r for r in rep.repaired)
    assert rep.clipped_windows == 1805
    by_id = {p.query_id: p for p in charades}
    assert by_id["IOL8Q#0"].windows == ((12.0, 20.9),)
    assert by_id["AKKWU#0"].windows == ((12.17, 12.17),)
    anet, rep = load(real_data, "activitynet", "train")
    assert len(rep.repaired) == 2
    assert {p.query_id: p for p in anet}["v_0bosp4-pyTM#3"].windows == ((60.71, 61.29),)
    assert not any(p.query.startswith(" ") for p in anet)


@pytest.mark.realdata
def test_guess_format_of_every_shipped_file(real_data: Path) -> None:
    for info in SHIPPED.values():
        folder = real_data / info.folder
        for rel in info.splits.values():
            assert guess_format(folder / rel) == info.fmt
        for rel in info.glance.values():
            assert guess_format(folder / rel) == info.fmt
        for rel in info.cfmr_glance.values():
            assert guess_format(folder / rel) == "cfmr_glance"


def test_missing_point_labels_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"glance/train\.json.*no point labels ship for activitynet train"):
        load_pairs("activitynet", "train", root=tmp_path, glance=True)
    with pytest.raises(DataError, match="no point labels ship for didemo"):
        load_pairs("didemo", "val", root=tmp_path, glance=True)
    with pytest.raises(DataError, match=r"val_1\.json: file not found"):
        load_pairs("activitynet", "val_1", root=tmp_path)
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_pairs("nope", "train")
    with pytest.raises(ConfigError, match="unknown split 'val'"):
        load_pairs("charades_sta", "val", root=tmp_path)


# ---- tiny bad files: one per error kind ---------------------------------------------

DUR = {"V1": 10.0, "V2": 20.0}


def charades(tmp_path: Path, text: str | bytes, **kw):
    """Parse a tiny Charades-STA file written to tmp_path."""
    path = tmp_path / "sta.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_annotation_file(path, fmt="charades", durations=DUR, **kw)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "line,message",
    [
        ("V1 1.0##a person sits.", "expected 'VID START END' before '##'"),  # missing field
        ("V1 1.0 2.0 a person sits.", "expected 'VID START END##sentence'"),  # missing separator
        ("V1 abc 2.0##a person sits.", "start: expected a number, got 'abc'"),
        ("V1 1.0 nan##a person sits.", "end: expected a finite number"),
        ("V1 -1.0 2.0##a person sits.", "negative time"),
        ("V1 5.0 3.0##a person sits.", "end before start"),
        ("V1 1.0 12.5##a person sits.", "ends 2.5 s past the video duration 10 s"),
        ("V1 1.0 2.0##   ", "sentence: empty"),
        ("V9 1.0 2.0##a person sits.", "video 'V9' has no length"),
    ],
)
def test_charades_bad_rows_name_file_line_and_expectation(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(DataError, match="sta.txt:line 2: .*" + _re(message)):
        charades(tmp_path, f"V2 0.0 3.0##ok.\n{line}\n")


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_zero_length_window_is_allowed_and_small_overshoot_is_clipped(tmp_path: Path) -> None:
    report = ParseReport()
    pairs = charades(tmp_path, "V1 3.0 3.0##a.\nV1 9.0 11.5##b.\n", report=report)
    assert [p.windows for p in pairs] == [((3.0, 3.0),), ((9.0, 10.0),)]
    assert report.clipped_windows == 1
    assert [p.query_id for p in pairs] == ["V1#0", "V1#1"]


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"sta\.txt:line 2: not UTF-8: byte 0xff"):
        charades(tmp_path, b"V1 0.0 3.0##ok.\nV1 0.0 3.0##caf\xff.\n")
    path = tmp_path / "a.json"
    path.write_bytes(b'{"v": {"duration": 5,\n "timestamps": [[0, 1]], "sentences": ["\xe9t\xe9"]}}')
    with pytest.raises(DataError, match=r"a\.json:line 2: not UTF-8: byte 0xe9"):
        load_annotation_file(path, fmt="activitynet")


def test_charades_glance_variant_and_point_outside_window(tmp_path: Path) -> None:
    pairs = charades(tmp_path, "V1 1.0 4.0##2.5##a person sits.\n")
    assert pairs[0].point == 2.5 and pairs[0].query == "a person sits."
    with pytest.raises(DataError, match=r"line 1: point 5 lies outside its window \[1, 4\]"):
        charades(tmp_path, "V1 1.0 4.0##5.0##a person sits.\n")


def test_charades_durations_come_from_the_csv_next_to_the_file(tmp_path: Path) -> None:
    header = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    path = write(alone, "sta.txt", "V1 0.0 3.0##a person sits.\n")
    with pytest.raises(DataError, match="no video durations: neither of Charades_v1_train.csv"):
        load_annotation_file(path)
    tmp_path = tmp_path / "charades"
    tmp_path.mkdir()
    write(tmp_path, "Charades_v1_train.csv", header + 'V1,S,Kitchen,6,7,Yes,"a, b",x,y,c1 0 1,12.5\n')
    (tmp_path / "glance").mkdir()
    path = write(tmp_path, "glance/sta.txt", "V1 0.0 3.0##1.0##a person sits.\n")
    assert load_annotation_file(path)[0].duration == 12.5


TACOS_OK = '"v1": {"fps": 25.0, "num_frames": 250, "timestamps": [[0, 50]], "sentences": ["He cuts."]}'


@pytest.mark.parametrize(
    "entry,message",
    [
        ('{"num_frames": 250, "timestamps": [[0, 50]], "sentences": ["x"]}', "missing field 'fps'"),
        ('{"fps": 25, "num_frames": 250, "timestamps": [[0, "5"]], "sentences": ["x"]}',
         "timestamps (frames) end: expected a number, got '5'"),
        ('{"fps": 25, "num_frames": 250, "timestamps": [[100, 50]], "sentences": ["x"]}', "end before start"),
        ('{"fps": 25, "num_frames": 250, "timestamps": [[0, 500]], "sentences": ["x"]}', "past the video duration"),
        ('{"fps": 25, "num_frames": 250, "timestamps": [[0, 50]], "sentences": [""]}', "sentence: empty"),
        ('{"fps": 25, "num_frames": 250, "timestamps": [[0, 50]], "sentences": []}', "1 timestamps but 0 sentences"),
    ],
)
def test_tacos_bad_entries(tmp_path: Path, entry: str, message: str) -> None:
    path = write(tmp_path, "t.json", "{" + TACOS_OK + ', "v2": ' + entry + "}")
    with pytest.raises(DataError, match=r"t\.json:key 'v2'( item 0)?: .*" + _re(message)):
        load_annotation_file(path, fmt="tacos")


def test_duplicate_ids_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "t.json", "{" + TACOS_OK + ", " + TACOS_OK + "}")
    with pytest.raises(DataError, match=r"t\.json:key 'v1': duplicate key"):
        load_annotation_file(path)
    row = '{"qid": 7, "query": "a dog runs", "duration": 150, "vid": "x_0_150", "relevant_windows": [[0, 2]]}\n'
    path = write(tmp_path, "q.jsonl", row + row)
    with pytest.raises(DataError, match=r"q\.jsonl:line 2 \(qid 7\): duplicate query id '7' \(first at line 1"):
        load_annotation_file(path)
    item = '{"annotation_id": 3, "description": "a", "video": "v", "times": [[0, 0]], "num_segments": 5}'
    path = write(tmp_path, "d.json", f"[{item}, {item}]")
    with pytest.raises(DataError, match=r"d\.json:item 1 \(annotation_id 3\): duplicate query id '3'"):
        load_annotation_file(path, fmt="didemo")


def test_didemo_consensus_ties_go_to_the_first_and_bad_chunks_fail(tmp_path: Path) -> None:
    item = '{"annotation_id": 1, "description": "a", "video": "v", "times": %s, "num_segments": 5}'
    path = write(tmp_path, "d.json", "[" + item % "[[2, 2], [1, 1], [1, 1], [2, 2], [0, 4]]" + "]")
    (p,) = load_annotation_file(path, fmt="didemo")
    assert p.windows == ((10.0, 15.0),) and p.annotator_windows[-1] == (0.0, 25.0)
    for times, message in [("[[3, 1]]", "end before start"), ("[[0, 5]]", "chunk 5 is past the video's 5 chunks"),
                           ("[[0.5, 1]]", "expected an integer"), ("[[NaN, 1]]", "expected an integer, got nan"),
                           ("[[0, Infinity]]", "expected an integer, got inf"), ("[]", "times: expected a non-empty list")]:
        write(tmp_path, "d.json", "[" + item % times + "]")
        with pytest.raises(DataError, match=r"d\.json:item 0: .*" + _re(message)):
            load_annotation_file(path, fmt="didemo")


def test_qvhighlights_bad_rows_and_unlabelled_rows(tmp_path: Path) -> None:
    test_row = '{"qid": 1, "query": "a dog runs", "duration": 150, "vid": "x_0_150"}\n'
    path = write(tmp_path, "q.jsonl", test_row)
    assert load_annotation_file(path)[0].windows == ()
    for row, message in [('{"qid": 2, "duration": 150, "vid": "x"}', "missing field 'query'"),
                         ('{"qid": 2, "query": "q", "duration": 150, "vid": "x", "relevant_windows": [[-2, 4]]}',
                          "negative time"),
                         ('{"qid": 2, "query": "q", "duration": 150', "invalid JSON")]:
        write(tmp_path, "q.jsonl", test_row + row + "\n")
        with pytest.raises(DataError, match=r"q\.jsonl:line 2: .*" + _re(message)):
            load_annotation_file(path, fmt="qvhighlights")


def test_cfmr_rows_and_malformed_json(tmp_path: Path) -> None:
    path = write(tmp_path, "g.json", '[["V1", 30.0, [1.0, 4.0], "x", 2.0], ["V1", 30.0, [1.0, 4.0], "x"]]')
    with pytest.raises(DataError, match=r"g\.json:item 1: expected \[vid, duration"):
        load_annotation_file(path)
    path = write(tmp_path, "bad.json", '{"v": {"duration": 5,\n "timestamps": [[0, 1]]')
    with pytest.raises(DataError, match=r"bad\.json:line 2 column \d+: invalid JSON"):
        load_annotation_file(path, fmt="activitynet")
    with pytest.raises(DataError, match="cannot tell the annotation format"):
        load_annotation_file(write(tmp_path, "x.txt", "hello\n"))


def test_skip_bad_skips_reports_and_warns_each_row(tmp_path: Path) -> None:
    report = ParseReport()
    text = "V1 0.0 3.0##a.\nV1 5.0 3.0##b.\nV1 1.0 2.0##   \nV2 4.0 9.0##c.\n"
    with pytest.warns(SkippedRowWarning) as caught:
        pairs = charades(tmp_path, text, skip_bad=True, report=report)
    assert [p.query for p in pairs] == ["a.", "c."]
    assert len(report.skipped) == 2 and len(caught) == 2
    assert "line 2: window [5, 3]: end before start" in report.skipped[0]
    assert "line 3: sentence: empty" in report.skipped[1]
    assert report.rows == 2
    # Skipping keeps the ids of the good rows where they were.
    assert [p.query_id for p in pairs] == ["V1#0", "V2#0"]
    with pytest.raises(DataError):
        charades(tmp_path, text)


def test_skip_bad_through_load_pairs(tmp_path: Path) -> None:
    good = '{"qid": %d, "query": "q", "duration": 150, "vid": "x", "relevant_windows": [[0, 2]]}\n'
    write(tmp_path, "highlight_val_release.jsonl", good % 1 + "{oops\n" + good % 1 + good % 2)
    report = ParseReport()
    with pytest.warns(SkippedRowWarning):
        pairs = load_pairs("qvhighlights", "val", root=tmp_path, skip_bad=True, report=report)
    assert [p.query_id for p in pairs] == ["1", "2"]
    assert len(report.skipped) == 2 and "duplicate query id" in report.skipped[1]


def test_one_table_names_every_dataset_and_its_protocol() -> None:
    from momentloc.data.formats import dataset_info, find_dataset

    assert dataset_info("Charades-STA").name == "charades_sta" and dataset_info("anet").name == "activitynet"
    assert dataset_info("qvh").protocol.headline == "mAP" and dataset_info("didemo").protocol.headline == "Rank@1"
    assert dataset_info("synthetic_ci").generator == "synthetic" and dataset_info("synthetic").name == "synthetic_ci"
    assert dataset_info("charades_sim").generator == "simulate" and dataset_info("charades_sim").folder == "charades_sta"
    assert {dataset_info(n).protocol.headline for n in ("tacos", "synthetic_long", "charades_sim")} == {"R1@0.5"}
    assert find_dataset("mine") is None
    with pytest.raises(ConfigError, match="unknown dataset 'mine'; expected one of charades_sta, tacos"):
        dataset_info("mine")
