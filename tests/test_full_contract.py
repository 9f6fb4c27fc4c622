"""Full supervision contract: full models learn from the window and nothing else about time.

Batches of a full dataset carry the window and no point (test_dataset); a
point put into the batch changes nothing of a training step (losses,
gradients, buffers) of any registered full model, built from its CI config,
bit for bit; and the converse: moving the windows does change the step.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from _models import ci_config, ci_model, tiny_parts

from momentloc.registry import models_by_supervision
from momentloc.types import Batch

FULL_MODELS = models_by_supervision("full")


@pytest.fixture(scope="module")
def parts(tiny_synth):
    return tiny_parts(tiny_synth)


def _step(name: str, parts, batch: Batch) -> list[torch.Tensor]:
    """Everything one seeded training step computes: its losses, then every gradient and buffer."""
    model = ci_model(name, parts.vocab).train()
    torch.manual_seed(1)  # the same dropout masks and draws every call
    losses = model.loss(model(batch), batch)
    losses["total"].backward()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    return [v.detach() for _, v in sorted(losses.items())] + grads + [b.detach() for b in model.buffers()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_every_full_model_is_checked():
    assert {"prior", "span", "tan2d", "snag"} <= set(FULL_MODELS)


@pytest.mark.parametrize("name", FULL_MODELS)
def test_a_point_in_the_batch_is_never_read(parts, name):
    batch = parts.batch("full", ci_config(name))
    assert batch.windows is not None and batch.point is None
    with_point = replace(batch, point=torch.rand(batch.size) * batch.duration)
    assert _same(_step(name, parts, batch), _step(name, parts, with_point))


@pytest.mark.parametrize("name", FULL_MODELS)
def test_moving_the_windows_changes_the_training_step(parts, name):
    # The converse: the window is the signal (the test above is not vacuous).
    batch = parts.batch("full", ci_config(name))
    mirrored = batch.duration[:, None] - batch.windows.flip(1)  # each window reflected about the video's middle
    moved = replace(batch, windows=mirrored)
    assert not torch.equal(moved.windows, batch.windows)
    assert not _same(_step(name, parts, batch), _step(name, parts, moved))
