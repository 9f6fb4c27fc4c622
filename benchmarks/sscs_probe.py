"""What a trained 2D-TAN + Sscs checkpoint's Sscs branch has learned, on the validation split.

For each checkpoint: the mass of the cross-attention of Eq. 4 (over all clips of the video, tau of the config)
that falls inside the ground-truth moment, the share of sentences whose most attended clip is inside it, and the
in-batch retrieval accuracy of Eq. 6 (sentence i's w_i scores highest with Y_i among the batch's sentences), with
the moment's share of the video as the chance level of the first. Prints a Markdown table.

    OMP_NUM_THREADS=1 python benchmarks/sscs_probe.py runs/results/tan2d_sscs_synthetic_ci_s0/checkpoints/best.ckpt ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader


def main() -> None:
    """Command-line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    from momentloc.data.sources import build_data
    from momentloc.objectives.support_set import gt_clip_mask, pool_support
    from momentloc.registry import get_model_class
    from momentloc.restore import module_from_checkpoint

    print("| checkpoint | attention mass in the moment | chance (moment share) | top clip in the moment "
          "| in-batch retrieval (Eq. 6) | chance |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in args.checkpoints:
        module = module_from_checkpoint(path)
        module.eval()
        cfg = module.cfg
        bundle = build_data(cfg.data, get_model_class(cfg.model.name).supervision, seed=0)
        obj = module.objectives.items[0]
        tau = obj.cfg.temperature
        loader = DataLoader(bundle.val, batch_size=args.batch_size, shuffle=True, drop_last=True,
                            collate_fn=bundle.val.collate, generator=torch.Generator().manual_seed(0))
        mass, share, top, hits, n, nb = 0.0, 0.0, 0.0, 0.0, 0, 0
        with torch.no_grad():
            for batch in loader:
                out = module.model(batch)
                emb = out.embeddings
                x, y = obj.psi(emb["clips"]), obj.phi(emb["sentence"])
                clip_mask = emb["clip_mask"].bool()
                pairs = [bundle.val.pairs[int(i)] for i in batch.index]  # the ground truth travels beside the batch
                windows = torch.tensor([p.windows[0] for p in pairs], dtype=torch.float32)
                gt = gt_clip_mask(clip_mask, windows, torch.tensor([p.duration for p in pairs], dtype=torch.float32))
                logits = torch.einsum("btd,bd->bt", F.normalize(x, dim=-1), F.normalize(y, dim=-1)) / tau
                a = torch.softmax(logits.masked_fill(~clip_mask, -1e4), -1)
                mass += float((a * gt).sum())
                share += float((gt.sum(1) / clip_mask.sum(1)).sum())
                top += float(gt.gather(1, a.argmax(1, keepdim=True)).sum())
                w = pool_support(x, y, clip_mask, tau)
                sims = F.normalize(w, dim=-1) @ F.normalize(y, dim=-1).t()
                hits += float((sims.argmax(1) == torch.arange(len(w))).sum())
                n += len(w)
                nb += 1
        label = f"{path.parent.parent.name}/{path.name}"
        print(f"| {label} | {mass / n:.3f} | {share / n:.3f} | {top / n:.3f} | {hits / n:.3f} "
              f"| {1 / args.batch_size:.3f} |", flush=True)


if __name__ == "__main__":
    main()
