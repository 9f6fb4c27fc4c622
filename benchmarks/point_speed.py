"""Training-step and inference time of SG-SCI relative to the ViGA-style baseline, in one run.

SG-SCI (Table 5) reports 1.0-1.1x training and 1.2x inference time against
ViGA. Both models are built from the paper configs (Charades-STA: I3D,
128 clips; TACoS: C3D, 512 clips) and timed on the same random batches.

    python benchmarks/point_speed.py --batch-size 32 --steps 10
    python benchmarks/point_speed.py --dataset tacos --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from momentloc.config import load_config
from momentloc.config_files import experiments_dir
from momentloc.data.random_batch import random_batch
from momentloc.models.base import GroundingModel, InputSpec
from momentloc.models.build import build_model
from momentloc.types import Batch

CONFIGS = experiments_dir()


def build(method: str, dataset: str, device: str) -> tuple[GroundingModel, int, int]:
    """The model of ``configs/experiment/<method>_<dataset>.yaml`` and its (clips, feature dim)."""
    cfg = load_config(CONFIGS / f"{method}_{dataset}.yaml")
    spec = InputSpec(video_dim=cfg.data.feature_dim, text_dim=cfg.data.text.dim, vocab_size=1000, num_clips=cfg.data.num_clips)
    torch.manual_seed(0)
    return build_model(cfg, spec).to(device), cfg.data.max_clips or cfg.data.num_clips or 128, cfg.data.feature_dim


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _clock(fn: Callable[[], None], device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def steps_of(model: GroundingModel, batch: Batch) -> tuple[Callable[[], None], Callable[[], None]]:
    """(one training step, one inference call) of ``model`` on ``batch``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step() -> None:
        model.train()
        loss = model.loss(model(batch), batch)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer() -> None:
        model.eval()
        model.decode(model(batch), batch, k=5)

    return train_step, infer


def compare(fns: dict[str, Callable[[], None]], steps: int, warmup: int, device: str) -> dict[str, float]:
    """Median seconds per call; the calls alternate so that a change in machine load hits every one alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            times[name].append(_clock(fn, device))
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    """Print one row per dataset: baseline and SG-SCI times and their ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["charades_sta", "tacos", "both"], default="both")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--words", type=int, default=12)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    datasets = ["charades_sta", "tacos"] if args.dataset == "both" else [args.dataset]
    print(f"device {args.device}, batch {args.batch_size}, median of {args.steps} alternating timed calls after {args.warmup} warm-up")
    print(f"{'dataset':<14}{'clips':>6} {'train base ms':>14}{'train SG-SCI ms':>16}{'ratio':>7} {'infer base ms':>14}{'infer SG-SCI ms':>16}{'ratio':>7}")
    for ds in datasets:
        train_fns, infer_fns = {}, {}
        for method in ("viga", "sg_sci"):
            model, T, D = build(method, ds, args.device)
            batch = random_batch(args.batch_size, T, D, num_words=args.words, text_dim=300, vocab_size=1000,
                                 supervision="point", variable_length=True, seed=0).to(args.device)
            train_fns[method], infer_fns[method] = steps_of(model, batch)
        train_t = compare(train_fns, args.steps, args.warmup, args.device)
        infer_t = compare(infer_fns, args.steps, args.warmup, args.device)
        rows = {m: (train_t[m], infer_t[m]) for m in ("viga", "sg_sci")}
        (tb, ib), (ts, is_) = rows["viga"], rows["sg_sci"]
        print(f"{ds:<14}{T:>6} {tb * 1e3:>14.1f}{ts * 1e3:>16.1f}{ts / tb:>6.2f}x {ib * 1e3:>14.1f}{is_ * 1e3:>16.1f}{is_ / ib:>6.2f}x")


if __name__ == "__main__":
    main()
