"""The protocol of a plug-in objective: a loss over the embeddings a model exposes."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from momentloc.models.base import GroundingModel, ModelConfig, Output
from momentloc.types import Batch


class ObjectiveConfig(ModelConfig):
    """Base of every objective's parameter block; unknown keys are errors."""


class Objective(nn.Module, metaclass=ABCMeta):
    """A loss added to a model's own: ``forward(out, batch) -> {"total": ..., ...}``.

    It reads only ``out.embeddings`` (see ``Output``), so any model that
    exposes the embeddings it needs can use it; it may own parameters
    (projections, heads), which are trained with the model.
    """

    Config: ClassVar[type[ObjectiveConfig]] = ObjectiveConfig
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: ObjectiveConfig, model: GroundingModel) -> None:
        super().__init__()
        self.cfg = cfg

    @abstractmethod
    def forward(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """The objective's losses; key ``total`` is what gets weighted and added."""
