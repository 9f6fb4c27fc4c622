"""Point (glance) labels: seeded generation, attaching given points, checking them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from momentloc.data.formats import load_pairs
from momentloc.data.points import (
    attach_points,
    generate_glance,
    point_position,
    points_outside,
)
from momentloc.errors import DataError
from momentloc.types import Pair


def _pairs(n: int = 50) -> list[Pair]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        s = float(rng.uniform(0, 20))
        window = (s, s + float(rng.uniform(0, 10)))
        out.append(Pair(f"v{i % 7}", 30.0, f"query {i}", windows=(window,), query_id=f"q{i}"))
    return out


def test_generate_glance_is_seeded_inside_and_order_free() -> None:
    pairs = _pairs()
    a, b, c = generate_glance(pairs, seed=1), generate_glance(pairs, seed=1), generate_glance(pairs, seed=2)
    assert [p.point for p in a] == [p.point for p in b]
    assert [p.point for p in a] != [p.point for p in c]
    assert points_outside(a) == []
    # A pair's point depends on the seed and the pair only, not on its neighbours.
    sub = generate_glance(list(reversed(pairs[:10])), seed=1)
    assert [p.point for p in reversed(sub)] == [p.point for p in a[:10]]
    # Everything but the point is unchanged.
    assert [(p.query_id, p.windows) for p in a] == [(p.query_id, p.windows) for p in pairs]


def test_generate_glance_is_uniform_in_the_window() -> None:
    pairs = [Pair("v", 10.0, "q", windows=((2.0, 6.0),), query_id=str(i)) for i in range(4000)]
    pos = np.array([point_position(p) for p in generate_glance(pairs, seed=0)])
    counts, _ = np.histogram(pos, bins=10, range=(0, 1))
    assert abs(pos.mean() - 0.5) < 0.02
    assert counts.min() > 330 and counts.max() < 470  # 400 expected per bin


def test_generate_glance_edge_cases() -> None:
    zero = Pair("v", 10.0, "q", windows=((3.0, 3.0),), query_id="z")
    assert generate_glance([zero], seed=0)[0].point == 3.0
    with pytest.raises(DataError, match="no window"):
        generate_glance([Pair("v", 10.0, "q", query_id="t")], seed=0)


def test_attach_points_by_id_or_order_and_reject_outside() -> None:
    pairs = _pairs(3)
    mids = [sum(p.windows[0]) / 2 for p in pairs]
    assert [p.point for p in attach_points(pairs, mids)] == mids
    assert [p.point for p in attach_points(pairs, {p.query_id: m for p, m in zip(pairs, mids)})] == mids
    with pytest.raises(DataError, match="no point for 1 pair"):
        attach_points(pairs, {pairs[0].query_id: mids[0], pairs[1].query_id: mids[1]})
    with pytest.raises(DataError, match="2 points for 3 pairs"):
        attach_points(pairs, mids[:2])
    with pytest.raises(DataError, match="outside their window"):
        attach_points(pairs, [p.windows[0][1] + 1 for p in pairs])
    assert points_outside(pairs) == [f"{p.query_id}: no point" for p in pairs]


@pytest.mark.realdata
def test_generated_points_on_a_real_split(real_data: Path) -> None:
    # ActivityNet train ships no point labels; generating them is the documented way.
    pairs = load_pairs("activitynet", "val_2", root=real_data / "activitynet")
    made = generate_glance(pairs, seed=0)
    assert points_outside(made) == []
    pos = np.array([point_position(p) for p in made])
    assert abs(pos.mean() - 0.5) < 0.01
