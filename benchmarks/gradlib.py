"""Shared parts of the per-loss-term gradient scripts (snag_gradients.py, sscs_gradients.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    """L2 norm of d loss / d params (over all of them together)."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def gradient_parser(doc: str, config: str) -> argparse.ArgumentParser:
    """The options both scripts take: config, overrides, steps, seed, row label, header."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--config", default=config)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 100])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default=None, help="row label (default: the config name)")
    ap.add_argument("--header", action="store_true", help="print the table header")
    return ap


def ci_module(args: argparse.Namespace, extra: list[str] = ()) -> tuple[Any, Any, Any]:
    """(config, data bundle, training module in train mode) of ``args.config`` on the CI synthetic set, seeded."""
    from momentloc.config import load_config
    from momentloc.config_files import experiment_config
    from momentloc.data.sources import build_data
    from momentloc.data.synthetic import ensure_synthetic
    from momentloc.registry import get_model_class
    from momentloc.training import GroundingModule, input_spec

    data = ensure_synthetic(ROOT / "artifacts" / "synthetic" / "ci", "ci")
    cfg = load_config(experiment_config(args.config),
                      [f"data.annotations={data}", *extra, *args.overrides])
    torch.manual_seed(args.seed)
    bundle = build_data(cfg.data, get_model_class(cfg.model.name).supervision, seed=args.seed)
    module = GroundingModule(cfg, input_spec(cfg, bundle.vocab), bundle.vocab)
    module.train()
    return cfg, bundle, module
