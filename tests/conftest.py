"""Shared fixtures: the real data folder (skip, or fail in CI, when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from momentloc.paths import data_root, require_data


def _need(path: Path) -> Path:
    if not path.exists():
        msg = f"real data file missing: {path} (set MOMENTLOC_DATA)"
        if require_data():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shipped data folder; skips (or fails with MOMENTLOC_REQUIRE_DATA=1) when absent."""
    return _need(data_root())


@pytest.fixture(scope="session")
def need_file(real_data: Path):
    """Return a function that resolves a path under the data folder or skips/fails."""

    def get(rel: str) -> Path:
        return _need(real_data / rel)

    return get
