"""Data-loader throughput alone, against the training-step rate of the models it feeds.

GroundingDataset over the CI synthetic benchmark (an HDF5 feature store),
batch sizes 32 and 64, 0 and 2 worker processes, query-centric and
video-centric batches (up to 4 queries per video, as SnAG). The first epoch reads the
store (cold cache); later epochs are served from each worker's cache, as in
training. The span and tan2d models are stepped on the same batches.

    python benchmarks/loader.py --json loader.json --md loader.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import benchlib as bl  # noqa: E402
from momentloc.config import load_config  # noqa: E402
from momentloc.data.dataset import GroundingDataset, VideoCentricSampler  # noqa: E402
from momentloc.data.sources import build_data, make_dataset  # noqa: E402
from momentloc.data.synthetic import ensure_synthetic  # noqa: E402
from momentloc.models.base import InputSpec  # noqa: E402
from momentloc.models.build import WeightedObjectives, build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "artifacts" / "synthetic" / "ci"
MODELS = ("span", "tan2d")


def _config(model: str, data: Path) -> Any:
    return load_config(bl.CONFIGS / f"{model}_synthetic_ci.yaml", [f"data.annotations={data}"])


def fresh_dataset(cfg: Any, bundle: Any) -> GroundingDataset:
    """A training dataset with an empty feature cache (so the first epoch reads the store)."""
    return make_dataset(cfg.data, bundle.train.pairs, bundle.vocab, "full")


def loader_for(ds: GroundingDataset, batch: int, workers: int, queries_per_video: int = 1) -> DataLoader:
    """A training loader as the trainer builds it: query-centric, or ``batch / queries_per_video`` videos."""
    kw: dict[str, Any] = dict(collate_fn=ds.collate, num_workers=workers, persistent_workers=workers > 0)
    if queries_per_video > 1:
        sampler = VideoCentricSampler(ds.pairs, batch // queries_per_video, queries_per_video, seed=0)
        return DataLoader(ds, batch_sampler=sampler, **kw)
    return DataLoader(ds, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0), **kw)


def epoch_rates(loader: DataLoader, epochs: int) -> list[dict[str, float]]:
    """Batches and pairs per second of each epoch (worker start-up counts in the first)."""
    out = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        batches = pairs = 0
        for b in loader:
            batches += 1
            pairs += b.size
        sec = time.perf_counter() - t0
        out.append({"batches_per_s": batches / sec, "pairs_per_s": pairs / sec, "ms_per_batch": 1e3 * sec / batches})
    return out


def hot_path(ds: GroundingDataset, batch: int) -> dict[str, float]:
    """Microseconds of the pieces of one batch: a store read, a cached item, and collate."""
    ids = [p.video_id for p in ds.pairs[:200]]
    t0 = time.perf_counter()
    for vid in ids:
        ds.store.get(vid)
    read = (time.perf_counter() - t0) / len(ids)
    for vid in ids:
        ds.video_features(vid)
    t0 = time.perf_counter()
    items = [ds[i] for i in range(200)]
    item = (time.perf_counter() - t0) / len(items)
    times = []
    for i in range(0, 200 - batch + 1, batch):
        t0 = time.perf_counter()
        ds.collate(items[i : i + batch])
        times.append(time.perf_counter() - t0)
    return {"store_read_us": 1e6 * read, "cached_item_us": 1e6 * item, "collate_us": 1e6 * statistics.median(times)}


def step_rate(model: str, bundle: Any, data: Path, batch: int, opts: bl.Options) -> dict[str, float]:
    """Median training step of ``model`` (its synthetic CI config) on a real loader batch."""
    cfg = _config(model, data)
    spec = InputSpec(video_dim=cfg.data.feature_dim, text_dim=bundle.vocab.dim, vocab_size=len(bundle.vocab),
                     num_clips=cfg.data.num_clips)
    torch.manual_seed(0)
    net = build_model(cfg, spec)
    objectives = WeightedObjectives(cfg, net)
    b = next(iter(loader_for(make_dataset(cfg.data, bundle.train.pairs, bundle.vocab, "full"), batch, 0)))
    res = bl.time_calls(bl.step_fn(net, objectives, cfg, b, opts), opts)
    return {"step_ms": res["ms"], "steps_per_s": 1e3 / res["ms"]}


def run(batches: tuple[int, ...] = (32, 64), workers: tuple[int, ...] = (0, 2), epochs: int = 3,
        models: tuple[str, ...] = MODELS, data: Path = DATA, opts: Optional[bl.Options] = None) -> dict[str, Any]:
    """Loader rates for every (batch, workers, layout) and step rates of ``models``."""
    opts = opts or bl.Options(warmup=1, repeats=5, budget_s=10.0)
    ensure_synthetic(data, "ci")
    cfg = _config("span", data)
    bundle = build_data(cfg.data, "full", seed=0)
    result: dict[str, Any] = {"data": str(data), "train_pairs": len(bundle.train), "epochs": epochs, "loader": [], "steps": []}
    for bs in batches:
        for w in workers:
            for qpv in (1, 4):
                rates = epoch_rates(loader_for(fresh_dataset(cfg, bundle), bs, w, qpv), epochs)
                layout = f"{bs // qpv} videos x up to {qpv} queries" if qpv > 1 else "query-centric"
                result["loader"].append({"batch": bs, "workers": w, "layout": layout, "cold": rates[0],
                                         "warm": rates[-1] if epochs > 1 else rates[0]})
        result["hot_path"] = hot_path(fresh_dataset(cfg, bundle), bs)
    for model in models:
        for bs in batches:
            result["steps"].append({"model": model, "batch": bs, **step_rate(model, bundle, data, bs, opts)})
    return result


def markdown(r: dict[str, Any]) -> str:
    """Loader and step tables, and how many training steps per second the loader could feed."""
    lines = [f"{r['train_pairs']} training pairs of the CI synthetic benchmark (HDF5 store); "
             f"{r['epochs']} epochs per row: cold = first epoch (store reads, worker start), warm = last.", "",
             "| batch | workers | layout | cold batches/s | warm batches/s | warm pairs/s |", "|---:|---:|---|---:|---:|---:|"]
    for row in r["loader"]:
        lines.append(f"| {row['batch']} | {row['workers']} | {row['layout']} | {row['cold']['batches_per_s']:.0f} "
                     f"| {row['warm']['batches_per_s']:.0f} | {row['warm']['pairs_per_s']:.0f} |")
    lines += ["", "Headroom: pairs per second of the slowest loader row of that batch size (cold epoch) over the pairs "
              "per second the training step consumes.", "",
              "| model (synthetic CI config) | batch | train step | steps/s | loader headroom |", "|---|---:|---:|---:|---:|"]
    for s in r["steps"]:
        slowest = min(x["cold"]["pairs_per_s"] for x in r["loader"] if x["batch"] == s["batch"])
        need = s["batch"] * s["steps_per_s"]
        lines.append(f"| {s['model']} | {s['batch']} | {s['step_ms']:.1f} ms | {s['steps_per_s']:.1f} | {slowest / need:.0f}x |")
    h = r["hot_path"]
    lines += ["", f"One store read {h['store_read_us']:.0f} us, one cached item {h['cached_item_us']:.0f} us, "
              f"collate of one batch {h['collate_us']:.0f} us."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> None:
    """Measure, print the tables, optionally write them."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch threads for the model steps (default: torch's)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    r = run(epochs=a.epochs)
    text = markdown(r)
    print(text)
    if a.json:
        a.json.write_text(json.dumps(r, indent=1) + "\n")
    if a.md:
        a.md.write_text(text)


if __name__ == "__main__":
    main()
