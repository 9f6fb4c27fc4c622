"""Every method on the simulated Charades-STA test split, over seeds; prints a Markdown table.

Rows are named in ROWS (a config under configs/experiment plus the overrides of a variant or control),
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
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_results import table  # noqa: E402

from momentloc.sim_scale import sim_config  # noqa: E402

COLUMNS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "R5@0.7", "mIoU")

# VLANet's Charades-STA windows (176/208/240 frames every 8 at 24 fps): the CPU-scale layer's CI model has windows in clips.
VLANET_WINDOWS = ["model.params.windows=[176,208,240]", "model.params.stride=8", "model.params.window_unit=frames"]
# row -> (method config stem, overrides of the variant, label)
ROWS: dict[str, tuple[str, list[str], str]] = {
    "prior": ("prior", [], "prior (no video, no query)"),
    "span": ("span", [], "span (ours, small)"),
    "tan2d": ("tan2d", [], "2D-TAN"),
    "tan2d_sscs": ("tan2d_sscs", [], "2D-TAN + Sscs"),
    "tan2d_sscs_base": ("tan2d_sscs", ["objectives=[]"], "2D-TAN, Sscs's encoder, schedule and batch"),
    "tan2d_sscs_control": ("tan2d_sscs", ["objectives.0.params.support=non_gt"], "control: Sscs, support outside the moment"),
    "snag": ("snag", [], "SnAG-style"),
    "snag_within": ("snag_msc", ["objectives.1.weight=0.0"], "+ within-scale"),
    "snag_cross": ("snag_msc", ["objectives.0.weight=0.0"], "+ cross-scale"),
    "snag_both": ("snag_msc", [], "+ both"),
    "snag_control": ("snag_msc", ["objectives.0.params.shuffle_levels=true", "objectives.1.params.shuffle_levels=true"],
                     "control: + both, pyramid levels shuffled"),
    "vlanet": ("vlanet", VLANET_WINDOWS, "VLANet"),
    "vlanet_flat": ("vlanet", [*VLANET_WINDOWS, "model.params.self_attention=false", "model.params.cross_attention=false"],
                    "VLANet without cascaded attention"),
    "vlanet_control": ("vlanet", [*VLANET_WINDOWS, "model.params.localize=random"], "control: VLANet, a random proposal"),
    "fsan": ("fsan", [], "FSAN"),
    "fsan_paper": ("fsan_paper", [], "FSAN, the paper's literal setting"),
    "viga": ("viga", [], "ViGA-style"),
    "sg_sci": ("sg_sci", [], "SG-SCI"),
    "sg_sci_global": ("sg_sci", ["model.params.use_fm=false", "model.params.use_mf=false"], "SG-SCI, global loss alone"),
    "sg_sci_fmmf": ("sg_sci", ["model.params.use_global=false"], "SG-SCI, F-M + M-F alone"),
    "sg_sci_control": ("sg_sci", ["model.params.global_on=similarity"], "control: SG-SCI, global loss on S"),
}
TRAIN_FREE = ("oracle", "salient")


def run_trained(row: str, seed: int, args: argparse.Namespace) -> dict:
    """Train a row's config with one seed; evaluate its selected checkpoint on test."""
    from momentloc.config import load_config
    from momentloc.training import evaluate_checkpoint, train

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
    ap.add_argument("--json", type=Path, default=None, help="append raw rows to this JSON file")
    ap.add_argument("--print", dest="print_only", action="store_true", help="only print the table of --json's rows")
    args = ap.parse_args()
    rows = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    if not args.print_only:
        for row in args.row:
            if row not in ROWS and row not in TRAIN_FREE:
                ap.error(f"unknown row {row!r}")
            for seed in args.seeds:
                extra = [f"data.simulate.seed={seed}"] if args.world_seed and row not in TRAIN_FREE else []
                args_seed = argparse.Namespace(**{**vars(args), "overrides": [*args.overrides, *extra]})
                run = run_train_free if row in TRAIN_FREE else run_trained
                out = run(row, seed, args_seed)
                rec = {"config": row, "seed": seed, "scale": args.scale, "dim": args.dim, "epochs": args.epochs,
                       "overrides": args_seed.overrides, **{k: float(v) for k, v in out.items() if "/" not in k}}
                rows.append(rec)
                print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in rec.items()}), flush=True)
                if args.json:
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(rows, indent=1))
    labels = {k: v[2] for k, v in ROWS.items()} | {"oracle": "oracle (knows the class)", "salient": "most salient (no query)"}
    print(table(rows, labels))


if __name__ == "__main__":
    main()
