"""User-facing errors: one line that names the file, the line or key, and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class MomentlocError(Exception):
    """An error caused by user input; the CLI prints it as one line, no traceback."""


class DataError(MomentlocError):
    """Bad annotation, feature or prediction file."""

    def __init__(self, path: Union[str, Path, None], message: str, where: Optional[str] = None) -> None:
        loc = str(path) if path is not None else "<input>"
        if where:
            loc = f"{loc}:{where}"
        super().__init__(f"{loc}: {message}")
        self.path = path
        self.where = where


class ConfigError(MomentlocError):
    """Bad configuration (unknown key, wrong type)."""


class CheckpointError(MomentlocError):
    """A checkpoint that cannot be used (truncated, other model, other feature spec)."""
