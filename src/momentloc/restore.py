"""Rebuild a model from a checkpoint for prediction: config, vocabulary and weights, checked, without the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import torch
from torch import nn

from momentloc.checkpoint import evaluation_state, load_checkpoint
from momentloc.config import ExperimentConfig, apply_overrides, validate
from momentloc.data.text import Vocabulary
from momentloc.errors import CheckpointError, ConfigError
from momentloc.models.base import InputSpec
from momentloc.models.build import WeightedObjectives, build_model

M = TypeVar("M", bound=nn.Module)


class LoadedModel(nn.Module):
    """A grounding model with its plug-in objectives, vocabulary and config: what prediction needs of a run.

    Its weights carry the training module's names (``model.``, ``objectives.``), so a checkpoint loads strictly.
    """

    def __init__(self, model: nn.Module, vocab: Any, cfg: Any, objectives: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.model, self.vocab, self.cfg, self.objectives = model, vocab, cfg, objectives

    @classmethod
    def build(cls, cfg: ExperimentConfig, spec: InputSpec, vocab: Vocabulary) -> "LoadedModel":
        """A freshly initialised model and objectives for ``cfg`` (as the training module builds them)."""
        model = build_model(cfg, spec)
        return cls(model, vocab, cfg, WeightedObjectives(cfg, model))


def module_from_checkpoint(
    path: Path, overrides: Optional[list[str]] = None,
    build: Callable[[ExperimentConfig, InputSpec, Vocabulary], M] = LoadedModel.build,  # type: ignore[assignment]
) -> M:
    """Rebuild the module (config, vocabulary, weights — the weight average if the run kept one) from a checkpoint, safely.

    ``build(cfg, spec, vocab)`` makes the module the weights go into: a ``LoadedModel`` by default; evaluation
    passes the training module, whose weights have the same names.
    """
    ckpt = load_checkpoint(path)
    meta = ckpt["momentloc"]
    cfg = validate(apply_overrides(meta["config"], overrides or []), f"{path} (embedded config)")
    try:
        vocab = Vocabulary.from_payload(meta["vocab"])
        spec = InputSpec(**meta["spec"])
        module = build(cfg, spec, vocab)
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: incomplete momentloc section ({type(err).__name__}: {err})") from None
    except ConfigError as err:  # e.g. the embedded config names a model its parameters do not fit
        raise CheckpointError(f"{path}: embedded config: {err}") from None
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: no state_dict (expected a Lightning checkpoint written by momentloc train)")
    state = evaluation_state(ckpt)  # the weight average, when the run kept one
    check_weights(path, cfg.model.name, module.state_dict(), state)
    module.load_state_dict(state, strict=True)
    return module


def check_weights(path: Path, model: str, expected: dict[str, torch.Tensor], found: dict[str, Any]) -> None:
    """Refuse weights that do not fit the model (names or shapes), naming the first few differences."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [k for k in expected if k in found and tuple(getattr(found[k], "shape", ())) != tuple(expected[k].shape)]
    if not (missing or unexpected or shapes):
        return
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", shapes)):
        if keys:
            first = keys[0]
            detail = (f" {tuple(found[first].shape)} instead of {tuple(expected[first].shape)}"
                      if label == "other shape" else "")
            parts.append(f"{len(keys)} {label} (first: {first}{detail})")
    raise CheckpointError(f"{path}: weights do not fit model {model!r}: {'; '.join(parts)}")
