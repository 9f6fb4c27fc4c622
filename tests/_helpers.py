"""Helpers shared by the method tests: training on the synthetic benchmark, state-dict round trips."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from momentloc.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "experiment"


def _overrides(root: Path, out: Path, extra: tuple[str, ...]) -> list[str]:
    return [f"data.annotations={root}", f"train.out_dir={out}", "train.progress=false", *extra]


def val_r1(config: str, root: Path, out: Path, *extra: str) -> float:
    """Validation R1@0.5 of the selected checkpoint after training ``config`` (a name under configs/experiment)."""
    from momentloc.training import train

    return train(load_config(CONFIGS / f"{config}.yaml", _overrides(root, out, extra))).metrics["R1@0.5"]


def metrics_on_test(config: str, root: Path, out: Path, *extra: str) -> dict:
    """Test-split metrics of the last checkpoint after training ``config``."""
    from momentloc.training import evaluate_checkpoint, train

    result = train(load_config(CONFIGS / f"{config}.yaml", _overrides(root, out, extra)))
    return evaluate_checkpoint(result.checkpoint, "test", [f"train.out_dir={out}"], breakdowns=False)[0]


def assert_round_trip(a: torch.nn.Module, b: torch.nn.Module, batch, key: str) -> None:
    """Loading ``a``'s saved state into a differently initialised ``b`` gives identical outputs and moments."""
    a.eval()
    b.eval()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    with torch.no_grad():
        oa, ob = a(batch), b(batch)
    torch.testing.assert_close(oa[key], ob[key], rtol=0, atol=0)
    assert a.decode(oa, batch, 5) == b.decode(ob, batch, 5)
