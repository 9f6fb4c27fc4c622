"""Checkpoint files: atomic writes, safe loads (``weights_only``), and what they carry."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

from momentloc.errors import CheckpointError

FORMAT = "momentloc-1"


def atomic_save(obj: Any, path: Union[str, Path]) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, rename: a kill leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: Union[str, Path], map_location: Optional[str] = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check it is one of ours."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, code objects
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a readable momentloc checkpoint ({msg[:200]})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("momentloc"), dict):
        raise CheckpointError(f"{path}: not a momentloc checkpoint (no 'momentloc' section)")
    if ckpt["momentloc"].get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {ckpt['momentloc'].get('format')!r}, expected {FORMAT!r}")
    return ckpt


def model_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The grounding model's own weights from a Lightning state dict (prefix ``model.``)."""
    state = ckpt.get("state_dict", {})
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
