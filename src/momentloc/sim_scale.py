"""Configs for the simulated Charades-STA at two scales: the paper's, and one that trains on a CPU.

``paper``: ``<method>_charades_sim.yaml`` as it is (each paper's Charades-STA settings).
``cpu``: the same data with the method's model, objectives, optimiser and batch taken from its
``<method>_synthetic_ci.yaml`` (the sizes made for CPU runs), for a given number of epochs, alike for
every method; what docs/results.md's simulated Charades-STA table uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml

from momentloc.config import load_layers
from momentloc.config_files import experiment_config, experiments_dir

SCALES = ("cpu", "paper")


def cpu_scale_layer(stem: str, epochs: int) -> dict:
    """Model, objectives, optimiser and batch of ``<stem>_synthetic_ci.yaml``, and ``epochs`` epochs."""
    ci = experiments_dir() / f"{stem}_synthetic_ci.yaml"
    if not ci.exists():
        return {"train": {"epochs": epochs}}
    raw = load_layers(ci)
    layer = {k: raw[k] for k in ("model", "objectives", "optim") if k in raw}
    train = {k: v for k, v in raw.get("train", {}).items() if k in ("batch_size", "ema_decay")}
    layer["train"] = {**train, "epochs": epochs}
    return layer


def sim_config(stem: str, scale: str, dim: int, epochs: Optional[int], work: Path) -> Path:
    """Write and return a config file: ``<stem>_charades_sim.yaml`` at feature dim ``dim``, then the scale's layer."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    layer: dict = {"base": [str(experiment_config(f"{stem}_charades_sim"))],
                   "data": {"feature_dim": dim, "simulate": {"dim": dim}}}
    if scale == "cpu":
        layer.update(cpu_scale_layer(stem, epochs or 3))
    elif epochs:
        layer["train"] = {"epochs": epochs}
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{stem}_{scale}_d{dim}.yaml"
    path.write_text(yaml.safe_dump(layer, sort_keys=False))
    return path
