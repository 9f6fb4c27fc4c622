"""Where the shipped benchmark files live (``MOMENTLOC_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path | None:
    """The source checkout this package runs from (the folder holding pyproject.toml), or None when installed."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def data_root() -> Path:
    """The data folder: ``$MOMENTLOC_DATA``, else ``../shared/data`` from the project root (from the working
    folder when the package is installed rather than run from its checkout)."""
    env = os.environ.get("MOMENTLOC_DATA")
    if env:
        return Path(env).expanduser().resolve()
    base = project_root() or Path.cwd()
    return (base / ".." / "shared" / "data").resolve()


def require_data() -> bool:
    """True when missing real data must fail instead of skip (``MOMENTLOC_REQUIRE_DATA=1``)."""
    return os.environ.get("MOMENTLOC_REQUIRE_DATA", "") not in ("", "0", "false")
