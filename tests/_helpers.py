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
    from momentloc.eval_run import evaluate_checkpoint
    from momentloc.training import train

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


def config_model_and_batch(name: str, supervision: str, clips: int, batch_size: int = 2, words: int = 8,
                           text_dim: int | None = None) -> tuple:
    """(config, model, random batch of the config's feature shape) for a config under configs/experiment.

    ``clips`` is the video length for variable-length configs; a fixed ``data.num_clips`` wins.
    """
    from momentloc.data.random_batch import random_batch
    from momentloc.models.base import InputSpec
    from momentloc.models.build import build_model

    cfg = load_config(CONFIGS / f"{name}.yaml")
    text_dim = text_dim or cfg.data.text.dim
    spec = InputSpec(video_dim=cfg.data.feature_dim, text_dim=text_dim, vocab_size=200, num_clips=cfg.data.num_clips)
    torch.manual_seed(0)
    model = build_model(cfg, spec)
    batch = random_batch(batch_size, cfg.data.num_clips or clips, cfg.data.feature_dim, num_words=words, text_dim=text_dim, vocab_size=200,
                         supervision=supervision, variable_length=cfg.data.num_clips is None, seed=1)
    return cfg, model, batch


def training_step(model: torch.nn.Module, batch, lr: float) -> dict:
    """One Adam step: the loss and every gradient are finite and the weights move; returns the losses."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    before = [p.detach().clone() for p in model.parameters()]
    losses = model.loss(model(batch), batch)
    assert torch.isfinite(losses["total"])
    opt.zero_grad()
    losses["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    return losses


def check_decode(model: torch.nn.Module, batch, k: int, ranked: bool = True) -> None:
    """Every pair gets 1..k moments inside its video, best first (``ranked``: scores never rise)."""
    model.eval()
    with torch.no_grad():
        moments = model.decode(model(batch), batch, k)
    assert len(moments) == batch.size
    for ms, dur in zip(moments, batch.duration.tolist()):
        assert 1 <= len(ms) <= k
        assert all(0.0 <= m.start < m.end <= dur + 1e-5 for m in ms)
        if ranked:
            assert [m.score for m in ms] == sorted((m.score for m in ms), reverse=True)
