"""Checkpoint files: atomic writes, safe loads (``weights_only``), and what they carry."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import torch

from momentloc.errors import CheckpointError
from momentloc.files import atomic_write

FORMAT = "momentloc-1"


def atomic_save(obj: Any, path: Union[str, Path]) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, rename: a kill leaves the old file."""
    with atomic_write(path) as fh:
        torch.save(obj, fh)
    return Path(path)


def load_checkpoint(path: Union[str, Path], map_location: Optional[str] = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check it is one of ours."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file (expected a .ckpt checkpoint)")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of foreign files; the error below says what matters.
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, code objects
        raise CheckpointError(f"{path}: {_load_failure(err)}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("momentloc"), dict):
        raise CheckpointError(f"{path}: not a momentloc checkpoint (no 'momentloc' section)")
    if ckpt["momentloc"].get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {ckpt['momentloc'].get('format')!r}, expected {FORMAT!r}")
    return ckpt


def _load_failure(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line and without advice to load it unsafely."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if isinstance(err, pickle.UnpicklingError) and lines and lines[0].startswith("Weights only load failed"):
        # torch names what it refused on a line of its own, e.g. "Trying to load unsupported GLOBAL posix.system ...";
        # its other lines suggest loading the file unsafely, which is not advice to pass on.
        why = [line for line in lines[1:] if not line.startswith(("Check the documentation", "Please file an issue"))]
        detail = why[0] if why else "unsupported content"
        return f"refused to load: its pickle asks for more than tensors and plain data ({detail[:200]})"
    detail = f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
    return f"not a readable momentloc checkpoint: truncated or not a torch file ({detail})"


# Where a run trained with ``train.ema_decay`` keeps the averaged weights (state-dict names -> tensors);
# ``state_dict`` keeps the raw weights, which resuming continues to train.
EMA_KEY = "ema_state_dict"


def evaluation_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The weights to evaluate: the raw ``state_dict`` with the averaged weights, when stored, in their place."""
    state = ckpt.get("state_dict", {})
    average = ckpt.get(EMA_KEY)
    if isinstance(state, dict) and isinstance(average, dict):
        return {**state, **average}
    return state


def model_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The grounding model's own weights (the averaged ones, when stored) from a Lightning state dict (prefix ``model.``)."""
    state = evaluation_state(ckpt)
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


def check_finite_weights(path: Union[str, Path], state: dict[str, Any]) -> None:
    """Refuse weights holding NaN or infinite values: such a model answers arbitrary moments with confidence."""
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: weight {name} holds NaN or infinite values (a diverged or damaged checkpoint)")
