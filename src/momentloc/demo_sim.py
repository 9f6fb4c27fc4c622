"""The demo's look at the simulated Charades-STA: a slice of it, with its reference points and 2D-TAN."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from momentloc.demo import table_row
from momentloc.paths import data_root

SLICE_VIDEOS = 400  # train videos of the slice (and 100 test videos)
SLICE_DIM = 256


def run_sim_demo(out_dir: Path, say: Callable[[str], None], shown: tuple[str, ...], epochs: int = 2) -> None:
    """Simulate a slice, then score the prior, the oracle, the query-blind baseline and 2D-TAN on its test split."""
    if not (data_root() / "charades_sta" / "Charades_v1_classes.txt").exists():
        say(f"skipped: the Charades files are not under {data_root() / 'charades_sta'} (set MOMENTLOC_DATA)")
        return
    from momentloc.config import load_config
    from momentloc.data.features import FeatureStore
    from momentloc.data.sim_baselines import oracle_predictions, salient_predictions
    from momentloc.data.simulate import World, read_source, spec_from
    from momentloc.data.sources import annotation_root, ensure_generated, feature_path, split_pairs
    from momentloc.eval_run import evaluate_checkpoint
    from momentloc.metrics import evaluate_moments
    from momentloc.sim_scale import sim_config
    from momentloc.training import train

    sets = [f"data.simulate.max_videos={SLICE_VIDEOS}", f"train.out_dir={out_dir}", "train.progress=false"]
    t0 = time.perf_counter()
    prior_cfg = load_config(sim_config("prior", "cpu", SLICE_DIM, 1, out_dir / "configs"), sets)
    ensure_generated(prior_cfg.data)
    say(f"simulated {SLICE_VIDEOS} + {SLICE_VIDEOS // 4} videos at dim {SLICE_DIM} in {time.perf_counter() - t0:.1f} s "
        f"({feature_path(prior_cfg.data).parent})")
    test = split_pairs(prior_cfg.data, "test")
    store = FeatureStore(feature_path(prior_cfg.data))
    src = read_source(annotation_root(prior_cfg.data))
    world = World(spec_from(prior_cfg.data.simulate or {}), src.classes)
    rows = []
    work = out_dir / "configs"
    for name, stem in (("prior only", "prior"), ("2D-TAN (CPU scale)", "tan2d")):
        t1 = time.perf_counter()
        result = train(load_config(sim_config(stem, "cpu", SLICE_DIM, epochs, work), sets))
        ckpt = result.best_checkpoint or result.checkpoint
        metrics, _, _ = evaluate_checkpoint(ckpt, "test", [f"train.out_dir={out_dir}", "train.progress=false"], breakdowns=False)
        rows.append(table_row(name, metrics, time.perf_counter() - t1, shown, width=24))
    for name, preds in (("oracle (knows the class)", oracle_predictions(test, store, world, src.timelines)),
                        ("most salient (no query)", salient_predictions(test, store))):
        rows.append(table_row(name, evaluate_moments(test, preds, breakdowns=False), 0.0, shown, width=24))
    say(f"test split of the slice: {len(test)} real sentences")
    say(f"| {'model':<24} | " + " | ".join(f"{k:>6}" for k in shown) + " | time s  |")
    say("|" + "---|" * (len(shown) + 2))
    for r in rows:
        say(r)
