"""Every method on the simulated Charades-STA test split, over seeds; prints a Markdown table.

Rows are named in ROWS (a shipped experiment config plus the overrides of a variant or control),
besides three that train nothing: ``prior`` (trains its histogram only), ``oracle`` and ``salient``
(momentloc.data.sim_baselines).

Two scales (momentloc.sim_scale): ``paper``, each row's ``<method>_charades_sim.yaml`` as it is (hours
per row on a CPU), and ``cpu``, the same data with each method's model, objectives, optimiser and batch
from its ``<method>_synthetic_ci.yaml``, for ``--epochs`` epochs, alike for every row.

Example (what docs/results.md was made with):

    python benchmarks/sim_results.py --scale cpu --dim 256 --epochs 3 --seeds 0 --row tan2d --row span \
        --json artifacts/results/sim_cpu.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from momentloc.sim_scale import sim_config  # noqa: E402

COLUMNS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "R5@0.7", "mIoU")

# VLANet's Charades-STA windows (176/208/240 frames every 8 at 24 fps): the CPU-scale layer's CI model has windows in clips.
VLANET_WINDOWS = ["model.params.windows=[176,208,240]", "model.params.stride=8", "model.params.window_unit=frames"]
# row -> (method config stem, overrides of the variant, label)
ROWS: dict[str, tuple[str, list[str], str]] = {
    "prior": ("prior", [], "prior (no video, no query)"),
    "span": ("span", [], "span (ours, small)"),
    "tan2d": ("tan2d", [], "2D-TAN"),
    "tan2d_sscs_base": ("tan2d_sscs", ["objectives=[]"], "2D-TAN, Sscs's encoder, schedule and batch"),
    "tan2d_sscs": ("tan2d_sscs", [], "2D-TAN + Sscs"),
    "tan2d_sscs_control": ("tan2d_sscs", ["objectives.0.params.support=non_gt"], "control: Sscs, support outside the moment"),
    "snag": ("snag", [], "SnAG-style"),
    "snag_within": ("snag_msc", ["objectives.1.weight=0.0"], "SnAG + within-scale"),
    "snag_cross": ("snag_msc", ["objectives.0.weight=0.0"], "SnAG + cross-scale"),
    "snag_both": ("snag_msc", [], "SnAG + both (Eqs. 11-12 as printed)"),
    "snag_within_mean": ("snag_msc", ["objectives.1.weight=0.0", "objectives.0.params.reduction=mean"],
                         "SnAG + within-scale, averaged (option, not in the paper)"),
    "snag_cross_mean": ("snag_msc", ["objectives.0.weight=0.0", "objectives.1.params.reduction=mean"],
                        "SnAG + cross-scale, averaged (option, not in the paper)"),
    "snag_both_mean": ("snag_msc", ["objectives.0.params.reduction=mean", "objectives.1.params.reduction=mean"],
                       "SnAG + both, each term averaged (option, not in the paper)"),
    "snag_control": ("snag_msc", ["objectives.0.params.shuffle_levels=true", "objectives.1.params.shuffle_levels=true"],
                     "control: SnAG + both, pyramid levels shuffled"),
    "vlanet": ("vlanet", VLANET_WINDOWS, "VLANet"),
    "vlanet_flat": ("vlanet", [*VLANET_WINDOWS, "model.params.self_attention=false", "model.params.cross_attention=false"],
                    "VLANet without cascaded attention"),
    "vlanet_control": ("vlanet", [*VLANET_WINDOWS, "model.params.localize=random"], "control: VLANet, a random proposal"),
    "fsan": ("fsan", [], "FSAN"),
    "fsan_paper": ("fsan_paper", [], "FSAN, the paper's literal setting"),
    "fsan_control": ("fsan", ["model.params.place=random"], "control: FSAN, each segment moved to a random place"),
    "viga": ("viga", [], "ViGA-style"),
    "sg_sci": ("sg_sci", [], "SG-SCI"),
    "sg_sci_global": ("sg_sci", ["model.params.use_fm=false", "model.params.use_mf=false"], "SG-SCI, global loss alone"),
    "sg_sci_fmmf": ("sg_sci", ["model.params.use_global=false"], "SG-SCI, F-M + M-F alone"),
    "sg_sci_control": ("sg_sci", ["model.params.global_on=similarity"], "control: SG-SCI, global loss on S"),
}
TRAIN_FREE = ("salient", "oracle")
# The paper's Charades-STA R1@0.5 beside each row (papers/README.md; the Table-3 row from SG-SCI's Table 3).
PAPER_R1_05 = {"tan2d": "50.62", "tan2d_sscs_base": "50.62", "tan2d_sscs": "56.97", "snag_both": "66.64",
               "vlanet": "31.83", "viga": "45.05", "sg_sci": "52.07", "sg_sci_global": "37.74", "sg_sci_fmmf": "25.59"}
# Table and plot order: the prior, the train-free baselines, then ROWS as listed.
ORDER = ["prior", *TRAIN_FREE, *(row for row in ROWS if row != "prior")]


def _labels() -> dict[str, str]:
    """Row name -> its label in the table and the plot."""
    return {k: v[2] for k, v in ROWS.items()} | {"oracle": "oracle (knows the class)",
                                                  "salient": "most salient stretch (no query)"}


def sim_plot(rows: list[dict], path: Path) -> None:
    """A bar per row (R1@0.5, mean and std over seeds, in ORDER), controls hatched, the paper's number as a dot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [n for n in ORDER if any(r["config"] == n for r in rows)]
    means = [statistics.mean(r["R1@0.5"] for r in rows if r["config"] == n) for n in names]
    stds = [statistics.pstdev([r["R1@0.5"] for r in rows if r["config"] == n]) for n in names]
    fig = Figure(figsize=(9, 0.32 * len(names) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = list(range(len(names)))
    bars = ax.barh(ys, means, xerr=stds, color=["#c44" if "control" in n else "#48a" for n in names])
    for bar, n in zip(bars, names):
        if "control" in n:
            bar.set_hatch("//")
    paper = [(y, float(PAPER_R1_05[n])) for y, n in zip(ys, names) if n in PAPER_R1_05]
    if paper:
        ax.plot([v for _, v in paper], [y for y, _ in paper], "ko", ms=4, label="the paper's Charades-STA R1@0.5")
        ax.legend(loc="lower right", fontsize=8)
    labels = _labels()
    ax.set_yticks(ys, [labels[n] for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("R1@0.5, simulated Charades-STA test split (mean ± std over seeds)")
    ax.set_xlim(0, 100)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def sim_table(rows: list[dict]) -> str:
    """Mean ± std over seeds per row, in ORDER, with the paper's Charades-STA R1@0.5 beside it (Markdown)."""
    labels = _labels()
    head = "| row | seeds | " + " | ".join(COLUMNS) + " | train (s) | paper R1@0.5 |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 4)]
    for name in ORDER:
        rs = [r for r in rows if r["config"] == name]
        if not rs:
            continue
        cells = []
        for c in COLUMNS:
            vals = [r[c] for r in rs]
            sd = statistics.pstdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.1f}" + (f" ± {sd:.1f}" if len(vals) > 1 else ""))
        seeds = ",".join(str(seed) for seed in sorted(r["seed"] for r in rs))
        train_s = statistics.mean(r["train_seconds"] for r in rs)
        lines.append(f"| {labels[name]} | {seeds} | " + " | ".join(cells) + f" | {train_s:.0f} | {PAPER_R1_05.get(name, '-')} |")
    return "\n".join(lines)


def run_trained(row: str, seed: int, args: argparse.Namespace) -> dict:
    """Train a row's config with one seed; evaluate its selected checkpoint on test."""
    from momentloc.config import load_config
    from momentloc.eval_run import evaluate_checkpoint
    from momentloc.training import train

    stem, sets, _ = ROWS[row]
    path = sim_config(stem, args.scale, args.dim, args.epochs, args.out_dir / "configs")
    name = f"{row}_{args.scale}_d{args.dim}_s{seed}"
    shutil.rmtree(args.out_dir / name, ignore_errors=True)
    cfg = load_config(path, [f"train.seed={seed}", f"train.out_dir={args.out_dir}", f"name={name}",
                             "train.progress=false", *sets, *args.overrides])
    t0 = time.perf_counter()
    result = train(cfg)
    train_s = time.perf_counter() - t0
    ckpt = result.best_checkpoint or result.checkpoint
    metrics, _, _ = evaluate_checkpoint(ckpt, "test", [f"train.out_dir={args.out_dir}"], breakdowns=False)
    return {"train_seconds": train_s, **{k: float(v) for k, v in metrics.items()}}


def run_train_free(row: str, seed: int, args: argparse.Namespace) -> dict:
    """The oracle or the query-blind baseline on the test split of the world with this seed."""
    from momentloc.config import load_config
    from momentloc.data.features import FeatureStore
    from momentloc.data.sim_baselines import oracle_predictions, salient_predictions
    from momentloc.data.simulate import World, read_source, spec_from
    from momentloc.data.sources import annotation_root, ensure_generated, feature_path, split_pairs
    from momentloc.metrics import evaluate_moments

    path = sim_config("prior", "paper", args.dim, None, args.out_dir / "configs")
    cfg = load_config(path, [f"data.simulate.seed={seed}"]).data
    ensure_generated(cfg)
    pairs = split_pairs(cfg, "test")
    store = FeatureStore(feature_path(cfg))
    if row == "oracle":
        src = read_source(annotation_root(cfg))
        preds = oracle_predictions(pairs, store, World(spec_from(cfg.simulate or {}), src.classes), src.timelines)
    else:
        preds = salient_predictions(pairs, store)
    return {"train_seconds": 0.0, **evaluate_moments(pairs, preds, breakdowns=False)}


def main() -> None:
    """Command-line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--row", action="append", default=[], help=f"row name (repeatable): {', '.join([*TRAIN_FREE, *ROWS])}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scale", default="cpu", choices=["cpu", "paper"])
    ap.add_argument("--dim", type=int, default=256, help="simulated feature dimension")
    ap.add_argument("--epochs", type=int, default=None, help="epochs for every row (cpu scale default 3)")
    ap.add_argument("--world-seed", action="store_true",
                    help="also use the seed as the simulated world's seed (a different world per seed)")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--out-dir", type=Path, default=Path("runs/sim_results"))
    ap.add_argument("--json", type=Path, nargs="+", default=None,
                    help="append raw rows to this JSON file (with --print: read the rows of every file named)")
    ap.add_argument("--print", dest="print_only", action="store_true", help="only print the table of --json's rows")
    ap.add_argument("--plot", type=Path, default=None, help="with --print: also draw R1@0.5 per row to this PNG")
    args = ap.parse_args()
    if args.print_only:
        rows = [r for f in args.json or [] for r in json.loads(f.read_text())]
        print(sim_table(rows))
        if args.plot:
            sim_plot(rows, args.plot)
        return
    out = args.json[0] if args.json else None
    rows = json.loads(out.read_text()) if out and out.exists() else []
    for row in args.row:
        if row not in ROWS and row not in TRAIN_FREE:
            ap.error(f"unknown row {row!r}")
        for seed in args.seeds:
            extra = [f"data.simulate.seed={seed}"] if args.world_seed and row not in TRAIN_FREE else []
            args_seed = argparse.Namespace(**{**vars(args), "overrides": [*args.overrides, *extra]})
            run = run_train_free if row in TRAIN_FREE else run_trained
            res = run(row, seed, args_seed)
            rec = {"config": row, "seed": seed, "scale": args.scale, "dim": args.dim, "epochs": args.epochs,
                   "overrides": args_seed.overrides, **{k: float(v) for k, v in res.items() if "/" not in k}}
            rows.append(rec)
            print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in rec.items()}), flush=True)
            if out:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(rows, indent=1))
    print(sim_table(rows))


if __name__ == "__main__":
    main()
