"""Atomic file writes: a temp file beside the target, fsynced, renamed into place.

A reader (or a kill mid-write) sees either the old file or the whole new one,
never a torn one. The new file gets the permissions an ordinary ``open`` would
give it (0666 less the umask), not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Iterator, Union

from momentloc.errors import MomentlocError, write_failure

PathLike = Union[str, Path]


@lru_cache(maxsize=1)
def _file_mode() -> int:
    """0666 less the process's umask, read once (setting the umask to read it is not thread-safe)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp file's path beside ``path`` for a writer that wants a file name (h5py, ``np.save`` by name).

    On a clean exit the temp file is fsynced and renamed onto ``path``; on an
    error it is removed and ``path`` is left as it was. ``suffix`` ends the
    temp file's name (for writers that pick a format by it).
    """
    path = Path(path)
    if path.is_dir():
        raise MomentlocError(f"{path}: is a folder; expected a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as err:
        raise (write_failure(path, err) or err) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except OSError as err:  # a full disk or a lost permission: one line naming the file, the old file kept
        raise (write_failure(path, err) or err) from None
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing, made atomic: the content lands on ``path`` only on a clean exit."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes a whole file: mode 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)
