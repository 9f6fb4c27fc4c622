"""ActivityNet Captions: a json dict keyed by ``v_<id>``; times and duration in seconds.

Sentences often start with a space; it is stripped. The ViGA point-label
variant adds ``"glance": [seconds, ...]`` (one per sentence).
"""

from __future__ import annotations

from typing import Optional

from momentloc.data.formats._common import ParseReport, PathLike
from momentloc.data.formats._videodict import parse_video_dict, seconds_base
from momentloc.types import Pair

# Measured: 261 train, 134 val_1 and 111 val_2 rows end past the duration, none
# by more than 0.01 s (a rounding artefact); they are clipped.
OVERSHOOT_TOL_S = 0.1

# Two rows of the shipped train.json have start > end. Both lie inside their
# video once swapped, which is the reading we take.
ERRATA: dict[tuple[str, float, float], str] = {
    ("v_0bosp4-pyTM", 60.71, 61.29): "start/end reversed in the source",
    ("v_rhOtqArO-3Y", 150.31, 173.44): "start/end reversed in the source",
}


def parse_activitynet(
    path: PathLike,
    glance: Optional[bool] = None,
    skip_bad: bool = False,
    report: Optional[ParseReport] = None,
    tol: float = OVERSHOOT_TOL_S,
) -> list[Pair]:
    """Parse an ActivityNet Captions json (plain or ViGA glance variant)."""
    return parse_video_dict(path, seconds_base, "s", ERRATA, tol, glance, skip_bad, report)
