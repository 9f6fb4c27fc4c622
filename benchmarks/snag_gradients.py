"""Gradient of each loss term of SnAG + multi-scale contrast on the video encoder, during training.

For the grounding loss (focal + rho_reg DIoU) and each weighted contrastive term (rho_within L_within,
rho_cross L_cross) the L2 norm of its gradient on the video encoder (``model.video_net``, the only part
both train), and each term's share of their sum, at the given steps of one training run that optimises
the config's total loss with its optimiser, gradient clipping and per-step schedule, CI synthetic set.
Prints a Markdown table.

    OMP_NUM_THREADS=1 python benchmarks/snag_gradients.py --steps 0 100 --header \
        [--set objectives.0.params.similarity=cosine ...] [--tag name]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]


def grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    """L2 norm of d loss / d params (over all of them together)."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def main() -> None:
    """Command-line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="snag_msc_synthetic_ci")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 100])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default=None, help="row label (default: the config name)")
    ap.add_argument("--header", action="store_true", help="print the table header")
    args = ap.parse_args()

    from momentloc.config import load_config
    from momentloc.data.dataset import VideoCentricSampler
    from momentloc.data.sources import build_data
    from momentloc.data.synthetic import ensure_synthetic
    from momentloc.registry import get_model_class
    from momentloc.training import GroundingModule, input_spec, make_optimizer

    data = ensure_synthetic(ROOT / "artifacts" / "synthetic" / "ci", "ci")
    cfg = load_config(ROOT / "configs" / "experiment" / f"{args.config}.yaml",
                      [f"data.annotations={data}", *args.overrides])
    torch.manual_seed(args.seed)
    bundle = build_data(cfg.data, get_model_class(cfg.model.name).supervision, seed=args.seed)
    module = GroundingModule(cfg, input_spec(cfg, bundle.vocab), bundle.vocab)
    module.train()
    sampler = VideoCentricSampler(bundle.train.pairs, cfg.train.batch_size, cfg.data.queries_per_video, seed=args.seed)
    loader = DataLoader(bundle.train, batch_sampler=sampler, collate_fn=bundle.train.collate)
    per_epoch = max(1, len(loader))
    made = make_optimizer(cfg.optim, module.named_parameters(), cfg.train.epochs, steps_per_epoch=per_epoch)
    opt = made["optimizer"] if isinstance(made, dict) else made
    sched = made["lr_scheduler"]["scheduler"] if isinstance(made, dict) else None
    per_step = isinstance(made, dict) and made["lr_scheduler"].get("interval") == "step"
    video = [p for n, p in module.model.named_parameters() if n.startswith("video_net.")]
    names = ["grounding", *module.objectives.names]

    def batches():
        while True:
            yield from loader

    if args.header:
        cols = " | ".join(f"{n} ‖g‖" for n in names) + " | " + " | ".join(f"{n} share" for n in names)
        print(f"| variant | step | {cols} | losses ({' / '.join(names)}) |")
        print("|---|---:|" + "---:|" * (2 * len(names)) + "---|")
    for step, batch in zip(range(max(args.steps) + 1), batches()):
        out = module.model(batch)
        terms = [module.model.loss(out, batch)["total"]]
        for weight, objective in zip(module.objectives.weights, module.objectives.items):
            terms.append(weight * objective(out, batch)["total"])
        if step in args.steps:
            norms = [grad_norm(t, video) for t in terms]
            total = sum(norms) or 1.0
            print(f"| {args.tag or args.config} | {step} | " + " | ".join(f"{g:.3g}" for g in norms) + " | "
                  + " | ".join(f"{g / total:.2f}" for g in norms) + " | "
                  + " / ".join(f"{float(t):.3g}" for t in terms) + " |", flush=True)
        opt.zero_grad(set_to_none=True)
        sum(terms).backward()
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.optim.grad_clip)
        opt.step()
        if sched is not None and (per_step or (step + 1) % per_epoch == 0):
            sched.step()


if __name__ == "__main__":
    main()
