"""Inference contract: no registered model reads a label when it predicts.

The ground truth travels beside a batch to the evaluator, never through the
model: in eval mode, forward and decode give the same moments for a batch
without labels (as ``Predictor`` builds it) and for the same batch carrying
a window and a point, whatever the model's supervision.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from _models import ci_config, ci_model, tiny_parts

from momentloc.registry import get_model_class, model_names


@pytest.fixture(scope="module")
def parts(tiny_synth):
    return tiny_parts(tiny_synth)


@pytest.mark.parametrize("name", model_names())
def test_predictions_read_no_label(parts, name):
    supervision = get_model_class(name).supervision
    batch = parts.batch(supervision, ci_config(name))
    bare = replace(batch, windows=None, point=None)
    g = torch.Generator().manual_seed(0)
    start = torch.rand(batch.size, generator=g) * 0.5 * batch.duration
    labelled = replace(bare, windows=torch.stack([start, start + 0.3 * batch.duration], 1), point=start)
    model = ci_model(name, parts.vocab).eval()
    with torch.no_grad():
        moments = [model.decode(model(b), b, 5) for b in (bare, labelled)]
    assert moments[0] and all(moments[0])
    assert moments[0] == moments[1]
