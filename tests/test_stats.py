"""Dataset statistics: exact values on small pairs, the text table, the plot, a real split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from momentloc.data.formats import load_pairs
from momentloc.data.stats import dataset_stats, format_stats, plot_stats, stats_table
from momentloc.types import Pair

PAIRS = [
    Pair("a", 10.0, "a person sits", windows=((0.0, 2.0),), point=1.0, query_id="a#0"),
    Pair("a", 10.0, "a person stands up now", windows=((5.0, 10.0),), query_id="a#1"),
    Pair("b", 20.0, "two windows", windows=((0.0, 10.0), (15.0, 20.0)), query_id="b#0"),
    Pair("c", 40.0, "no label", query_id="c#0"),
]


def test_dataset_stats_exact_values() -> None:
    st = dataset_stats(PAIRS)
    json.dumps(st)  # plain types only
    assert (st["pairs"], st["videos"], st["windows"]) == (4, 3, 4)
    assert st["pairs_without_window"] == 1 and st["pairs_with_point"] == 1
    assert st["windows_per_pair"] == {"0": 1, "1": 2, "2": 1}
    assert st["duration_s"]["count"] == 3 and st["duration_s"]["quantiles"]["0.5"] == 20.0
    assert st["moment_length_s"]["mean"] == pytest.approx(5.5)
    assert st["moment_length_frac"]["quantiles"]["1"] == pytest.approx(0.5)
    assert st["moment_start_frac"]["quantiles"]["0"] == 0.0
    assert st["moment_centre_frac"]["mean"] == pytest.approx((0.1 + 0.75 + 0.25 + 0.875) / 4)
    assert st["moment_end_frac"]["quantiles"]["1"] == 1.0
    assert st["point_position"]["mean"] == pytest.approx(0.5)
    assert st["pairs_per_video"]["quantiles"]["1"] == 2.0
    assert st["query_words"]["quantiles"]["1"] == 5.0
    for key in ("duration_s", "moment_length_frac", "moment_start_frac"):
        assert sum(st[key]["hist"]["counts"]) == st[key]["count"]
    assert st["moment_start_frac"]["hist"]["edges"][-1] == 1.0


def test_empty_stats_and_format() -> None:
    st = dataset_stats([])
    assert st["pairs"] == 0 and st["duration_s"] is None
    assert format_stats(st).startswith("pairs 0")


def test_format_stats_and_table() -> None:
    st = dataset_stats(PAIRS)
    header, rows = stats_table(st)
    assert header[:3] == ["quantity", "mean", "std"] and header[-1] == "max"
    assert all(len(r) == len(header) for r in rows)
    text = format_stats(st, title="tiny")
    assert text.splitlines()[0] == "tiny"
    assert "moment length / duration" in text and "windows per pair: 0: 1, 1: 2, 2: 1" in text


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_stats_writes_the_file_atomically(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = plot_stats(PAIRS, tmp_path / "sub" / f"stats{suffix}", title="tiny")
    assert out.read_bytes().startswith(magic)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left


@pytest.mark.realdata
def test_stats_of_real_charades_test(real_data: Path, tmp_path: Path) -> None:
    pairs = load_pairs("charades_sta", "test", root=real_data / "charades_sta")
    st = dataset_stats(pairs)
    assert (st["pairs"], st["videos"], st["windows"]) == (3720, 1334, 3720)
    assert 0.2 < st["moment_length_frac"]["mean"] < 0.35
    assert st["moment_end_frac"]["quantiles"]["1"] <= 1.0
    assert plot_stats(pairs, tmp_path / "charades.png").stat().st_size > 10_000
