"""Gradient of each loss term of 2D-TAN + Sscs on the parameters both objectives train, during training.

For the model's loss (2D-TAN's BCE) and each weighted Sscs term (lambda_1 L_contrast, lambda_2 L_caption, times
the objective's section weight) the L2 norm of its gradient on the shared encoder (the parameters that receive a
gradient from both: 2D-TAN's clip projection and sentence LSTM), at the given steps of one training run that
optimises the config's total loss, CI synthetic set. Prints a Markdown table.

    OMP_NUM_THREADS=1 python benchmarks/sscs_gradients.py --steps 0 100 --batch-size 16 \
        [--set objectives.0.params.contrast_reduction=sum] [--tag literal]
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from gradlib import ci_module, grad_norm, gradient_parser


def main() -> None:
    """Command-line entry."""
    ap = gradient_parser(__doc__, "tan2d_sscs_synthetic_ci")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    from momentloc.optim import make_optimizer

    cfg, bundle, module = ci_module(args, [f"train.batch_size={args.batch_size}"])
    opt = make_optimizer(cfg.optim, module.named_parameters(), cfg.train.epochs)
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    (obj,), (weight,) = list(module.objectives.items), module.objectives.weights
    p = obj.cfg
    loader = DataLoader(bundle.train, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        collate_fn=bundle.train.collate, generator=torch.Generator().manual_seed(args.seed))

    def batches():
        while True:
            yield from loader

    if args.header:
        print("| variant | step | BCE | λ1·contrast | λ2·caption | Sscs share | video side: BCE / Sscs "
              "| text side: BCE / Sscs | loss BCE / contrast / caption |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    named = dict(module.model.named_parameters())
    shared: list[str] | None = None
    for step, batch in zip(range(max(args.steps) + 1), batches()):
        out = module.model(batch)
        bce = module.model.loss(out, batch)["total"]
        contrast, caption = obj.terms(out, batch)
        terms = {"bce": bce, "contrast": weight * p.contrast_weight * contrast,
                 "caption": weight * p.caption_weight * caption}
        if shared is None:  # parameters with a gradient from the model's loss and from Sscs
            sscs_total = terms["contrast"] + terms["caption"]
            g_model = torch.autograd.grad(bce, list(named.values()), retain_graph=True, allow_unused=True)
            g_sscs = torch.autograd.grad(sscs_total, list(named.values()), retain_graph=True, allow_unused=True)
            shared = [n for (n, _), a, b in zip(named.items(), g_model, g_sscs)
                      if a is not None and b is not None and a.abs().sum() > 0 and b.abs().sum() > 0]
        if step in args.steps:
            params = [named[n] for n in shared]
            video = [named[n] for n in shared if not n.startswith("sentence.")]
            text = [named[n] for n in shared if n.startswith("sentence.")]
            norms = {k: grad_norm(v, params) for k, v in terms.items() if v.requires_grad}
            n_sscs = grad_norm(terms["contrast"] + terms["caption"], params)
            share = n_sscs / (n_sscs + norms["bce"])
            side = [f"{grad_norm(bce, ps):.3g} / {grad_norm(terms['contrast'] + terms['caption'], ps):.3g}"
                    for ps in (video, text)]
            print(f"| {args.tag or args.config} | {step} | {norms['bce']:.3g} | {norms.get('contrast', 0.0):.3g} "
                  f"| {norms.get('caption', 0.0):.3g} | {share:.2f} | {side[0]} | {side[1]} "
                  f"| {float(bce.detach()):.3f} / {float(contrast.detach()):.3f} / {float(caption.detach()):.3f} |", flush=True)
        total = bce + terms["contrast"] + terms["caption"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    print(f"shared parameters: {', '.join(shared or [])}")


if __name__ == "__main__":
    main()
