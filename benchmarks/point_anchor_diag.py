"""Train a point-supervised config once on the CI synthetic set, then report how often the anchor (argmax of the
query-to-clip attention, argmax of the clip-sentence cosine S) falls inside the ground-truth moment, and R1@0.5 /
mIoU of the same checkpoint decoded with each anchor and each span score.

    OMP_NUM_THREADS=1 python benchmarks/point_anchor_diag.py sg_sci_synthetic_ci 0 [key=value ...]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Train, measure anchor hits, decode the checkpoint every way, print one JSON row."""
    from momentloc.config import load_config
    from momentloc.config_files import experiment_config
    from momentloc.data.sources import make_dataset, split_pairs
    from momentloc.eval_run import evaluate_checkpoint
    from momentloc.restore import module_from_checkpoint
    from momentloc.training import train

    config, seed, *sets = sys.argv[1:]
    out = ROOT / "runs" / "diag"
    name = f"diag_{config}_s{seed}"
    shutil.rmtree(out / name, ignore_errors=True)
    base = [f"train.seed={seed}", f"train.out_dir={out}", f"name={name}", "train.progress=false"]
    cfg = load_config(experiment_config(config), base + sets)
    result = train(cfg)
    ckpt = result.best_checkpoint or result.checkpoint
    module = module_from_checkpoint(ckpt)
    model = module.model.eval()
    pairs = split_pairs(module.cfg.data, "test", seed=module.cfg.train.seed)
    ds = make_dataset(module.cfg.data, pairs, module.vocab, "weak")
    hits = {"attention": 0, "similarity": 0}
    with torch.no_grad():
        for i in range(0, len(ds), 128):
            batch = ds.collate([ds[j] for j in range(i, min(i + 128, len(ds)))])
            o = model(batch)
            lengths = batch.video_mask.sum(1)
            for key, score in (("attention", o["query_attention"]), ("similarity", o["clip_sim"])):
                anchor = score.masked_fill(~batch.video_mask, float("-inf")).argmax(1)
                for b in range(anchor.shape[0]):
                    pair = pairs[int(batch.index[b])]
                    t = (float(anchor[b]) + 0.5) / float(lengths[b]) * pair.duration  # the anchor clip's centre
                    hits[key] += any(s <= t <= e for s, e in pair.windows)
    row: dict = {"config": config, "seed": int(seed), "sets": sets,
                 "anchor_hit": {k: round(100 * v / len(ds), 1) for k, v in hits.items()}}
    for anchor in ("attention", "similarity"):
        for score in ("dot", "cosine", "contrast"):
            sets_eval = [f"train.out_dir={out}", f"model.params.anchor={anchor}", f"model.params.proposal_score={score}"]
            m, _, _ = evaluate_checkpoint(ckpt, "test", sets_eval, breakdowns=False)
            row[f"{anchor}/{score}"] = {"R1@0.5": round(m["R1@0.5"], 1), "mIoU": round(m["mIoU"], 1)}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
