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

import torch
from torch.utils.data import DataLoader

from gradlib import ci_module, grad_norm, gradient_parser


def main() -> None:
    """Command-line entry."""
    ap = gradient_parser(__doc__, "snag_msc_synthetic_ci")
    args = ap.parse_args()

    from momentloc.data.dataset import VideoCentricSampler
    from momentloc.optim import make_optimizer

    cfg, bundle, module = ci_module(args, ())
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
