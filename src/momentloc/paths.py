"""Where the shipped benchmark files live (``MOMENTLOC_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """The data folder: ``$MOMENTLOC_DATA``, else ``../shared/data`` from the project root."""
    env = os.environ.get("MOMENTLOC_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def require_data() -> bool:
    """True when missing real data must fail instead of skip (``MOMENTLOC_REQUIRE_DATA=1``)."""
    return os.environ.get("MOMENTLOC_REQUIRE_DATA", "") not in ("", "0", "false")
