"""Checks that training losses are finite without stalling a GPU, and keeps the latest one for display.

Reading a GPU tensor on the host (``bool(torch.isfinite(loss))``, ``loss.item()``)
waits for every queued kernel, so the host cannot queue the backward pass and the
next step while the device still runs this one. On a GPU each step's loss is
instead copied to pinned host memory without waiting, behind an event, and read
once the event has passed: usually at the next step, at the latest before
validation or a checkpoint is written, so a non-finite loss never reaches a
saved file. On a CPU there is nothing to overlap, and the loss is checked at once,
before its backward pass.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from momentloc.errors import MomentlocError


class NonFiniteLossError(MomentlocError):
    """Training produced a NaN or infinite loss."""


@dataclass
class _Pending:
    value: torch.Tensor  # a host scalar once ``arrived()``
    arrived: Callable[[], bool]
    wait: Callable[[], None]
    step: int
    epoch: int


class LossWatch:
    """Takes each step's loss with ``push``; ``check`` raises ``NonFiniteLossError`` for the first bad one."""

    def __init__(self) -> None:
        self._pending: deque[_Pending] = deque()
        self.last: Optional[float] = None  # the latest loss that has reached the host

    def push(self, loss: torch.Tensor, step: int, epoch: int) -> None:
        """Start moving ``loss`` to the host (on a GPU, without waiting) and check what has arrived."""
        value = loss.detach().float().reshape(())
        if value.is_cuda:
            host = torch.empty((), dtype=torch.float32, pin_memory=True)
            host.copy_(value, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._pending.append(_Pending(host, event.query, event.synchronize, step, epoch))
            self.check(wait=False)
        else:
            self._pending.append(_Pending(value, lambda: True, lambda: None, step, epoch))
            self.check(wait=True)

    @property
    def pending(self) -> int:
        """Losses pushed but not yet read on the host."""
        return len(self._pending)

    def check(self, wait: bool = True) -> None:
        """Read every loss that has arrived (with ``wait``, all of them, waiting for the device) in step order."""
        while self._pending and (wait or self._pending[0].arrived()):
            item = self._pending.popleft()
            item.wait()
            value = float(item.value)
            if not math.isfinite(value):
                self._pending.clear()
                raise NonFiniteLossError(f"non-finite loss ({value}) at step {item.step} (epoch {item.epoch}); "
                                         "the last good checkpoint is kept")
            self.last = value
