"""Train and test experiment configs over several seeds on the synthetic benchmark; print a Markdown table.

Example (what docs/results.md was made with):

    python benchmarks/synthetic_results.py --size ci --seeds 0 1 2 \
        --config tan2d_synthetic_ci --config tan2d_sscs_synthetic_ci --json artifacts/results/full.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

COLUMNS = ("R1@0.1", "R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU")


LONG_MOMENT_BINS = (0.005, 0.02)  # of a 2,000-4,000 s video: short <= about 15 s, long > about 60 s


def long_breakdown(pairs: list, predictions: dict) -> dict[str, float]:
    """Metrics per moment-length bin for long videos (fractions of the video, as in momentloc.metrics)."""
    from momentloc.metrics import breakdown_metrics

    ranked = [[m.as_list() for m in predictions.get(i, [])] for i in range(len(pairs))]
    out = breakdown_metrics(ranked, pairs, moment_bins=LONG_MOMENT_BINS, video_bins=(3000.0, 3500.0))
    return {k: v for k, v in out.items() if k.startswith("moment-")}


def run_one(config: str, seed: int, size: str, out_dir: Path, overrides: list[str], tag: str | None = None,
            breakdowns: bool = False) -> dict:
    """Train one config with one seed, evaluate its selected checkpoint on test."""
    from momentloc.config import load_config
    from momentloc.config_files import experiment_config
    from momentloc.eval_run import evaluate_checkpoint
    from momentloc.training import train

    path = experiment_config(config)
    # one fresh run directory per (variant, seed): a run must not find older checkpoints
    name = f"{tag or config}_s{seed}"
    shutil.rmtree(out_dir / name, ignore_errors=True)
    sets = [f"train.seed={seed}", f"train.out_dir={out_dir}", f"name={name}", "train.progress=false", *overrides]
    if size != "ci":
        sets += [f"data.dataset=synthetic_{size}", f"data.annotations=artifacts/synthetic/{size}"]
    cfg = load_config(path, sets)
    t0 = time.perf_counter()
    result = train(cfg)
    train_s = time.perf_counter() - t0
    ckpt = result.best_checkpoint or result.checkpoint
    metrics, predictions, pairs = evaluate_checkpoint(ckpt, "test", [f"train.out_dir={out_dir}"], breakdowns=False)
    if breakdowns:
        metrics.update(long_breakdown(pairs, predictions))
    return {"config": config, "seed": seed, "train_seconds": train_s, **{k: float(v) for k, v in metrics.items()}}


def table(rows: list[dict], label: dict[str, str] | None = None) -> str:
    """Mean ± std over seeds per config, in Markdown."""
    label = label or {}
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["config"], []).append(r)
    head = "| method | seeds | " + " | ".join(COLUMNS) + " | train time (s) |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for config, rs in by.items():
        cells = []
        for c in COLUMNS + ("train_seconds",):
            vals = [r[c] for r in rs if c in r]
            if not vals:
                cells.append("-")
                continue
            sd = statistics.pstdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.1f} ± {sd:.1f}" if c != "train_seconds" else f"{statistics.mean(vals):.0f}")
        lines.append(f"| {label.get(config, config)} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Command-line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", default=[], help="experiment config name (repeatable)")
    ap.add_argument("--print", dest="print_only", action="store_true", help="only print the table of the rows in --json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", default="ci", choices=["ci", "bench", "long"])
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--out-dir", type=Path, default=Path("runs/results"))
    ap.add_argument("--json", type=Path, default=None, help="append raw rows to this JSON file")
    ap.add_argument("--breakdowns", action="store_true", help="add metrics per moment length (long videos' bins)")
    ap.add_argument("--tag", default=None, help="row label instead of the config name (for a variant made with --set)")
    args = ap.parse_args()
    if args.print_only:
        rows = json.loads(args.json.read_text())
        print(table([r for r in rows if r.get("size") == args.size]))
        return
    if not args.config:
        ap.error("give --config (or --print with --json)")
    if args.size != "ci":
        from momentloc.data.synthetic import ensure_synthetic

        ensure_synthetic(Path("artifacts/synthetic") / args.size, args.size)
    rows = []
    if args.json and args.json.exists():
        rows = json.loads(args.json.read_text())
    for config in args.config:
        for seed in args.seeds:
            row = run_one(config, seed, args.size, args.out_dir, args.overrides, args.tag, args.breakdowns)
            row["size"] = args.size
            row["config"] = args.tag or config
            row["overrides"] = args.overrides
            rows.append(row)
            print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items() if "/" not in k}), flush=True)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=1))
    shown = [args.tag] if args.tag else args.config
    print(table([r for r in rows if r["config"] in shown and r.get("size") == args.size]))


if __name__ == "__main__":
    main()
