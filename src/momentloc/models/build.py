"""Build a model and its plug-in objectives from an experiment config."""

from __future__ import annotations

import torch
from torch import nn

from momentloc.config import ExperimentConfig, validate_params
from momentloc.errors import ConfigError
from momentloc.models.base import GroundingModel, InputSpec, Output
from momentloc.registry import get_model_class, get_objective
from momentloc.types import Batch


def build_model(cfg: ExperimentConfig, spec: InputSpec) -> GroundingModel:
    """Instantiate the registered model named in ``cfg.model`` with validated params."""
    try:
        cls = get_model_class(cfg.model.name)
    except KeyError as err:
        raise ConfigError(f"model.name: {err.args[0]}") from None
    params = validate_params(cls.Config, cfg.model.params, f"model.params ({cfg.model.name})")
    return cls(params, spec)


class WeightedObjectives(nn.Module):
    """The configured plug-in objectives with their weights."""

    def __init__(self, cfg: ExperimentConfig, model: GroundingModel) -> None:
        super().__init__()
        self.items = nn.ModuleList()
        self.names: list[str] = []
        self.weights: list[float] = []
        for i, section in enumerate(cfg.objectives):
            try:
                cls = get_objective(section.name)
            except KeyError as err:
                raise ConfigError(f"objectives[{i}].name: {err.args[0]}") from None
            params = validate_params(cls.Config, section.params, f"objectives[{i}].params ({section.name})")
            self.items.append(cls(params, model))
            self.names.append(section.name)
            self.weights.append(section.weight)

    def forward(self, out: Output, batch: Batch, total: torch.Tensor) -> dict[str, torch.Tensor]:
        """``total`` (the model's loss) plus every weighted objective, as key ``total``; and each objective's
        own losses as ``<name>/<key>``."""
        losses: dict[str, torch.Tensor] = {}
        for name, weight, objective in zip(self.names, self.weights, self.items):
            extra = objective(out, batch)
            total = total + weight * extra["total"]
            losses.update({f"{name}/{k}": v for k, v in extra.items()})
        losses["total"] = total
        return losses
