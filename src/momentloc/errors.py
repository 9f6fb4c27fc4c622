"""User-facing errors: one line that names the file, the line or key, and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


def one_line(text: str) -> str:
    """The message an error shows: its original line when a DataLoader worker wrapped it, else its lines joined."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    # torch re-raises a worker's exception as Type("Caught Type in DataLoader worker ...\nOriginal Traceback ...
    # \nmodule.Type: message"): the user needs only that last line's message.
    if len(lines) > 1 and "Original Traceback" in text:
        head, sep, message = lines[-1].partition(": ")
        return message if sep and "." in head else lines[-1]
    return " ".join(lines)


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when empty), cut to ``limit`` characters."""
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:limit]


class MomentlocError(Exception):
    """An error caused by user input; the CLI prints it as one line, no traceback."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(str(message)))


class DataError(MomentlocError):
    """Bad annotation, feature or prediction file."""

    def __init__(self, path: Union[str, Path, None], message: Optional[str] = None, where: Optional[str] = None) -> None:
        if message is None:
            # One argument is a finished message: how pickle and torch's DataLoader workers rebuild the error.
            super().__init__(str(path))
            self.path, self.where, self.message = None, None, str(self)
            return
        loc = str(path) if path is not None else "<input>"
        if where:
            loc = f"{loc}:{where}"
        super().__init__(f"{loc}: {message}")
        self.path = path
        self.where = where
        self.message = message


class ConfigError(MomentlocError):
    """Bad configuration (unknown key, wrong type)."""


class CheckpointError(MomentlocError):
    """A checkpoint that cannot be used (truncated, other model, other feature spec)."""


class LimitError(DataError):
    """Input past a configured size limit (clips, frames, nesting); the message says how to raise the limit."""


def write_failure(path: Union[str, Path], err: OSError) -> Optional[MomentlocError]:
    """A one-line error for a write that failed for a reason the user can fix (disk full, no permission), else None."""
    import errno

    reasons = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.ENAMETOOLONG: "file name too long", errno.ENOTDIR: "a part of the path is a file, not a folder",
               errno.EISDIR: "is a folder, not a file"}
    if err.errno not in reasons:
        return None
    return MomentlocError(f"{path}: cannot write: {reasons[err.errno]}")
