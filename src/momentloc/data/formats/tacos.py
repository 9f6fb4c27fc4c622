"""TACoS: a json dict keyed by video; timestamps and glance points are FRAME indices.

Seconds = frame / fps and duration = num_frames / fps. The ViGA point-label
variant adds ``"glance": [frame, ...]`` (one per sentence).
"""

from __future__ import annotations

from typing import Optional

from momentloc.data.formats._common import ParseReport, PathLike
from momentloc.data.formats._videodict import frames_base, parse_video_dict
from momentloc.types import Pair

# Measured: 43 train rows end 15 frames (0.51 s) and 5 test rows 7 frames
# (0.24 s) past num_frames; they are clipped. Further out is an error.
OVERSHOOT_TOL_S = 1.0


def parse_tacos(
    path: PathLike,
    glance: Optional[bool] = None,
    skip_bad: bool = False,
    report: Optional[ParseReport] = None,
    tol: float = OVERSHOOT_TOL_S,
) -> list[Pair]:
    """Parse a TACoS json (plain or ViGA glance variant, detected when ``glance`` is None)."""
    return parse_video_dict(path, frames_base, "frames", {}, tol, glance, skip_bad, report)
