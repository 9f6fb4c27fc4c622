"""Training steps through the trainer (`momentloc train`) against the bare step of benchlib, same config and batch.

The trainer's step adds what a user's run pays on top of the model: data
loading, Lightning's loop, logging, the loss check, the weight average, the
progress bar, and (by default) deterministic algorithms. Steps per second are
taken over a window of steps with the device synchronised only at its two
ends, so a sync inside the step (a loss read on the host) shows as lost overlap. Synthetic CI configs, CI synthetic set.

    python benchmarks/trainer_steps.py --device cuda [--models span tan2d vlanet] [--steps 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import benchlib as bl  # noqa: E402
from momentloc.config import load_config  # noqa: E402
from momentloc.data.synthetic import ensure_synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("span", "tan2d", "vlanet", "viga")


class StepClock(L.Callback):
    """Wall time from the end of step ``skip`` to the end of step ``skip + window``, synchronised at both ends."""

    def __init__(self, skip: int, window: int) -> None:
        self.skip, self.window = skip, window
        self.t0 = self.t1 = 0.0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step in (self.skip, self.skip + self.window):
            if torch.cuda.is_available() and module.device.type == "cuda":
                torch.cuda.synchronize()
            if step == self.skip:
                self.t0 = time.perf_counter()
            else:
                self.t1 = time.perf_counter()

    @property
    def ms_per_step(self) -> float:
        return 1e3 * (self.t1 - self.t0) / self.window if self.t1 else float("nan")


def trainer_ms(model: str, data: Path, device: str, steps: int, skip: int, out: Path, extra: Sequence[str] = ()) -> float:
    """Milliseconds per training step of ``momentloc train`` (validation off, one epoch long enough)."""
    from momentloc import training

    cfg = load_config(bl.CONFIGS / f"{model}_synthetic_ci.yaml", [
        f"data.annotations={data}", f"train.out_dir={out}", f"train.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        f"train.max_steps={skip + steps}", "train.epochs=1000", "train.check_val_every_n_epoch=1000", "train.num_workers=2",
        "train.progress=false", *extra])
    clock = StepClock(skip, steps)
    training.train(cfg, callbacks=[clock])
    return clock.ms_per_step


def bare_ms(model: str, data: Path, device: str, extra: Sequence[str] = ()) -> float:
    """Milliseconds of benchlib's bare step (forward, losses, backward, optimiser) on one batch of the same data."""
    from momentloc.data.sources import build_data
    from momentloc.registry import get_model_class
    from momentloc.training import GroundingModule, input_spec

    cfg = load_config(bl.CONFIGS / f"{model}_synthetic_ci.yaml", [f"data.annotations={data}", *extra])
    bundle = build_data(cfg.data, get_model_class(model).supervision, seed=0)
    module = GroundingModule(cfg, input_spec(cfg, bundle.vocab), bundle.vocab).to(device)
    loader = DataLoader(bundle.train, batch_size=cfg.train.batch_size, shuffle=True, collate_fn=bundle.train.collate,
                        generator=torch.Generator().manual_seed(0))
    batch = next(iter(loader)).to(device)
    opts = bl.Options(device=device, repeats=20, budget_s=10.0)
    step = bl.step_fn(module.model, module.objectives, cfg, batch, opts)
    return bl.time_calls(step, opts)["ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=60, help="timed steps")
    ap.add_argument("--skip", type=int, default=10, help="steps before the timed window")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = ensure_synthetic(ROOT / "artifacts" / "synthetic" / "ci", "ci")
    print(f"device {args.device}; {args.steps} steps after {args.skip}; trainer default: train.deterministic=true")
    print("| model | bare step | trainer step | trainer, deterministic off | trainer / bare |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            t = trainer_ms(model, data, args.device, args.steps, args.skip, Path(tmp) / "a")
            free = trainer_ms(model, data, args.device, args.steps, args.skip, Path(tmp) / "b", ["train.deterministic=false"])
            b = bare_ms(model, data, args.device)
            print(f"| {model} | {b:.1f} ms | {t:.1f} ms | {free:.1f} ms | {t / b:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
