"""An exponential moving average of a module's weights (``train.ema_decay``), kept beside the raw weights."""

from __future__ import annotations

from typing import Any

import torch

from momentloc.errors import CheckpointError


class WeightAverage:
    """An exponential moving average of a module's trainable parameters, by parameter name.

    ``update`` does ``avg = decay * avg + (1 - decay) * param``; ``swap`` exchanges the averages and the
    parameters in place, so swapping twice restores both exactly. Buffers are not averaged.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.values: dict[str, torch.Tensor] = {}

    @staticmethod
    def _trainable(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in module.named_parameters() if p.requires_grad}

    def _average(self, name: str, param: torch.Tensor) -> torch.Tensor:
        """The average of ``name``, on ``param``'s device (a loaded average arrives on the CPU)."""
        avg = self.values[name]
        if avg.device != param.device:
            avg = self.values[name] = avg.to(param.device)
        return avg

    @torch.no_grad()
    def reset(self, module: torch.nn.Module) -> None:
        """Start the average at the module's current weights."""
        self.values = {n: p.detach().clone() for n, p in self._trainable(module).items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """One averaging step, after an optimiser step."""
        for name, param in self._trainable(module).items():
            self._average(name, param).mul_(self.decay).add_(param.detach(), alpha=1 - self.decay)

    @torch.no_grad()
    def swap(self, module: torch.nn.Module) -> None:
        """Put the averages into the module and its weights into the averages."""
        for name, param in self._trainable(module).items():
            avg = self._average(name, param)
            held = param.detach().clone()
            param.copy_(avg)
            avg.copy_(held)

    def load(self, values: dict[str, Any], module: torch.nn.Module) -> None:
        """Take stored averages; their names must be the module's trainable parameters."""
        expected = set(self._trainable(module))
        diff = sorted(set(values) ^ expected) or sorted(k for k, v in values.items() if not isinstance(v, torch.Tensor))
        if diff:
            raise CheckpointError(f"the stored weight average does not fit the model (first difference: {diff[0]})")
        self.values = {k: v.detach().clone() for k, v in values.items()}
