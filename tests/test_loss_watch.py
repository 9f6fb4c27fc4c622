"""LossWatch: non-finite losses are reported with their step; on a GPU without a sync per step."""

from __future__ import annotations

import pytest
import torch

from momentloc.loss_watch import LossWatch, NonFiniteLossError, _Pending


def test_cpu_losses_are_checked_at_once() -> None:
    watch = LossWatch()
    watch.push(torch.tensor(0.5), step=0, epoch=0)
    assert watch.pending == 0 and watch.last == 0.5
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 7 \(epoch 2\)"):
        watch.push(torch.tensor(float("nan")), step=7, epoch=2)
    assert watch.pending == 0 and watch.last == 0.5


def _in_flight(watch: LossWatch, value: float, step: int, state: dict) -> None:
    """A loss whose copy to the host has not finished until ``state['done']`` (as a GPU copy behind an event)."""

    def wait() -> None:
        state["done"] = True

    watch._pending.append(_Pending(torch.tensor(value), lambda: state["done"], wait, step, 0))


def test_a_loss_in_flight_is_read_once_it_has_arrived_or_when_waited_for() -> None:
    watch, state = LossWatch(), {"done": False}
    _in_flight(watch, 1.0, 3, state)
    _in_flight(watch, float("inf"), 4, state)
    watch.check(wait=False)
    assert watch.pending == 2 and watch.last is None  # nothing arrived: nothing read, no wait
    with pytest.raises(NonFiniteLossError, match=r"\(inf\) at step 4"):
        watch.check(wait=True)  # before validation or a checkpoint: waits, and reads in step order
    assert watch.last == 1.0 and watch.pending == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_losses_arrive_without_a_sync() -> None:
    watch = LossWatch()
    for step in range(3):
        watch.push(torch.tensor(float(step), device="cuda"), step=step, epoch=0)
    watch.check(wait=True)
    assert watch.last == 2.0 and watch.pending == 0
    watch.push(torch.tensor(float("nan"), device="cuda"), step=3, epoch=0)
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        watch.check(wait=True)
