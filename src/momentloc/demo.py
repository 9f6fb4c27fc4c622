"""The demo (main job): synthetic benchmark -> train -> evaluate -> localize, plus the shipped annotations."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch

from momentloc.config import load_config
from momentloc.config_files import experiment_config
from momentloc.metrics import format_table
from momentloc.paths import data_root

SHOWN = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU")


def _say(msg: str) -> None:
    print(msg, flush=True)


def table_row(name: str, metrics: dict, seconds: float, shown: tuple[str, ...] = SHOWN, width: int = 18) -> str:
    """One Markdown row of the demo's tables: name, the shown metrics, training seconds."""
    return f"| {name:<{width}} | " + " | ".join(f"{metrics[k]:6.2f}" for k in shown) + f" | {seconds:7.1f} |"


def _train_eval(config: Path, out_dir: Path, overrides: list[str]) -> tuple[dict, Path, float]:
    from momentloc.eval_run import evaluate_checkpoint
    from momentloc.training import train

    cfg = load_config(config, [f"train.out_dir={out_dir}", *overrides])
    t0 = time.perf_counter()
    result = train(cfg)
    ckpt = result.best_checkpoint or result.checkpoint
    metrics, _, _ = evaluate_checkpoint(ckpt, "test", [f"train.out_dir={out_dir}", "train.progress=false"])
    return metrics, ckpt, time.perf_counter() - t0


def real_prior_table() -> Optional[str]:
    """The prior-only baseline fitted on each shipped benchmark's train annotations, scored on its test split."""
    from momentloc.data.formats import load_pairs
    from momentloc.metrics import evaluate_moments
    from momentloc.models.prior import fit_prior_moments

    root = data_root()
    if not root.exists():
        return None
    rows = []
    for dataset, train_split, test_split in (("charades_sta", "train", "test"), ("tacos", "train", "test"), ("activitynet", "train", "val_2")):
        if not (root / dataset).exists():
            continue
        train = load_pairs(dataset, train_split)
        test = load_pairs(dataset, test_split)
        preds = fit_prior_moments(train, test, k=5)
        m = evaluate_moments(test, preds, breakdowns=False)
        rows.append(f"| {dataset:<12} | {len(train):>6} | {len(test):>6} | " + " | ".join(f"{m[k]:6.2f}" for k in SHOWN) + " |")
    head = "| dataset      |  train |   test | " + " | ".join(f"{k:>6}" for k in SHOWN) + " |"
    return "\n".join([head, "|" + "---|" * (3 + len(SHOWN))] + rows)


def _video_step(out_dir: Path) -> None:
    """The raw-video path on the shipped Charades clip (skipped with a one-line reason without PyAV)."""
    import importlib.util

    if importlib.util.find_spec("av") is None:
        _say("skipped: PyAV is not installed (pip install 'momentloc[video]')")
        return
    from momentloc.demo_video import run_video_demo

    run_video_demo(out_dir / "video", _say, data_root() / "demo" / "charades_Y1HGC.mp4")


def run_demo(out_dir: Path = Path("runs/demo"), epochs: Optional[int] = None, model: str = "span") -> dict:
    """Run the whole demo and print what it measures; returns the test metrics of the trained model."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from momentloc.data.sources import split_pairs
    from momentloc.data.synthetic import ensure_synthetic

    t0 = time.perf_counter()
    _say("== 1. synthetic benchmark (CI size) ==")
    root = ensure_synthetic(Path("artifacts/synthetic/ci"), "ci")
    _say(f"at {root}  ({time.perf_counter() - t0:.1f} s)")

    extra = [f"train.epochs={epochs}"] if epochs else []
    _say("\n== 2. train: prior-only baseline and the model ==")
    prior, _, t_prior = _train_eval(experiment_config("prior_synthetic_ci"), out_dir, ["train.progress=false"])
    learned, ckpt, t_model = _train_eval(experiment_config(f"{model}_synthetic_ci"), out_dir, extra)

    _say("\n== 3. test split of the synthetic benchmark ==")
    _say("| model              | " + " | ".join(f"{k:>6}" for k in SHOWN) + " | time s  |")
    _say("|" + "---|" * (len(SHOWN) + 2))
    _say(table_row("prior only", prior, t_prior))
    _say(table_row(model, learned, t_model))
    _say("\nfull table for " + model + ":\n" + format_table({k: v for k, v in learned.items() if "/" not in k}))

    _say("\n== 4. localize one query with the trained checkpoint ==")
    from momentloc.predict import Predictor

    cfg = load_config(experiment_config(f"{model}_synthetic_ci"))
    pair = split_pairs(cfg.data, "test")[0]
    pred = Predictor.from_checkpoint(ckpt, device="cpu")
    feats = pred.module.model  # noqa: F841 - keep the model warm for the timing below
    from momentloc.data.features import FeatureStore

    store = FeatureStore(root / "features.hdf5")
    t1 = time.perf_counter()
    moments = pred.localize(store.get(pair.video_id), pair.query, top_k=3, duration=pair.duration)[0]
    _say(f'video {pair.video_id} ({pair.duration:.1f} s), query "{pair.query}"')
    _say(f"ground truth: {pair.window[0]:.1f} s - {pair.window[1]:.1f} s")
    for i, m in enumerate(moments, 1):
        _say(f"  {i}. {m.start:5.1f} s - {m.end:5.1f} s   score {m.score:.3f}")
    _say(f"({(time.perf_counter() - t1) * 1000:.0f} ms)")

    table = real_prior_table()
    if table:
        _say("\n== 5. shipped annotations: the prior-only baseline on the real benchmarks ==")
        _say("(no visual features ship; this is the bar a real model must beat)")
        _say(table)

    _say("\n== 6. the simulated Charades-STA (a slice): real sentences and timelines, simulated features ==")
    from momentloc.demo_sim import run_sim_demo

    run_sim_demo(out_dir / "charades_sim", _say, SHOWN)

    _say("\n== 7. a raw video: decode -> extract features -> localize -> plot ==")
    _video_step(out_dir)
    _say(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; checkpoint: {ckpt}")
    return learned
