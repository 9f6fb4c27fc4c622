"""Point ("glance") labels: draw them from windows, attach given ones, check them."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Mapping, Optional, Sequence, Union

from momentloc.errors import DataError
from momentloc.types import Pair


def _unit_draw(seed: int, key: str) -> float:
    # A hash of (seed, pair key) instead of one generator over the list: each
    # pair's point then depends only on the seed and the pair, not on the order
    # or subset of pairs it is drawn with.
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / float(1 << 53)


def generate_glance(pairs: Sequence[Pair], seed: int) -> list[Pair]:
    """Copies of ``pairs`` with ``point`` drawn uniformly inside each first window (seeded, per pair)."""
    out = []
    for i, pair in enumerate(pairs):
        if not pair.windows:
            raise DataError(None, f"pair {pair.query_id or i!r} ({pair.video_id}) has no window to draw a point in")
        start, end = pair.windows[0]
        key = pair.query_id if pair.query_id is not None else f"{pair.video_id}\x00{pair.query}\x00{i}"
        out.append(replace(pair, point=start + _unit_draw(seed, key) * (end - start)))
    return out


def attach_points(
    pairs: Sequence[Pair],
    points: Union[Mapping[str, float], Sequence[float]],
    tol: float = 1e-6,
) -> list[Pair]:
    """Copies of ``pairs`` with points from a {query_id: seconds} mapping or a parallel sequence.

    Every pair must get a point, and it must lie in the pair's first window (within ``tol``).
    """
    if isinstance(points, Mapping):
        missing = [p.query_id for p in pairs if p.query_id not in points]
        if missing:
            raise DataError(None, f"no point for {len(missing)} pair(s), e.g. query id {missing[0]!r}")
        values = [float(points[p.query_id]) for p in pairs]  # type: ignore[index]
    else:
        if len(points) != len(pairs):
            raise DataError(None, f"{len(points)} points for {len(pairs)} pairs")
        values = [float(v) for v in points]
    out = [replace(p, point=v) for p, v in zip(pairs, values)]
    bad = points_outside(out, tol)
    if bad:
        raise DataError(None, f"{len(bad)} point(s) outside their window, e.g. {bad[0]}")
    return out


def points_outside(pairs: Sequence[Pair], tol: float = 1e-6) -> list[str]:
    """One line per pair whose point is missing or outside its first window (empty when all are inside)."""
    bad = []
    for i, p in enumerate(pairs):
        name = p.query_id if p.query_id is not None else f"#{i}"
        if p.point is None:
            bad.append(f"{name}: no point")
        elif not p.windows:
            bad.append(f"{name}: point {p.point:g} but no window")
        else:
            s, e = p.windows[0]
            if not s - tol <= p.point <= e + tol:
                bad.append(f"{name}: point {p.point:g} outside [{s:g}, {e:g}]")
    return bad


def point_position(pair: Pair) -> Optional[float]:
    """Where the point sits in its first window: 0 at the start, 1 at the end (None without one)."""
    if pair.point is None or not pair.windows:
        return None
    s, e = pair.windows[0]
    return 0.5 if e <= s else (pair.point - s) / (e - s)
