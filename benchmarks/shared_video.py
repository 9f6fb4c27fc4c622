"""Forward + top-5 decode of 100 queries on one video: video branch run per pair vs once per video.

    python benchmarks/shared_video.py --threads 1 [--models tan2d vlanet] [--queries 100]

"Per pair" gives every row its own ``video_group`` (as if each query came with
its own copy of the video), so the model encodes the clips once per row; "once
per video" is the batch ``Predictor`` builds (one group). Same weights, same
inputs, same outputs (tests/test_predictor_batch.py checks the outputs agree).
Each model at its Charades-STA config (the synthetic one where it has none).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

import benchlib

MODELS = ("fsan", "sg_sci", "snag", "span", "tan2d", "viga", "vlanet")


@torch.no_grad()
def median_ms(net: torch.nn.Module, batch, repeats: int) -> float:
    """Median time of forward + decode after one warm-up call."""
    net.decode(net(batch), batch, 5)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        net.decode(net(batch), batch, 5)
        times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[len(times) // 2]


def measure(model: str, queries: int, repeats: int) -> dict[str, float]:
    """Milliseconds for ``queries`` queries on one video (per pair, once per video) and for one query."""
    opts = benchlib.Options(quick=True)
    path, _ = benchlib.find_config(model)
    cfg = benchlib.load(path, model)
    shape = benchlib.shape_for(cfg, opts)
    net, _, _ = benchlib.build(model, cfg, opts)
    net.eval()
    one_video = benchlib.make_batch(model, replace(shape, queries_per_video=queries), queries, shape.clips, "cpu")
    per_pair = replace(one_video, video_group=torch.arange(queries), num_videos=queries)
    one = benchlib.make_batch(model, shape, 1, shape.clips, "cpu")
    return {"per_pair": median_ms(net, per_pair, repeats), "shared": median_ms(net, one_video, repeats),
            "one": median_ms(net, one, repeats)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"| model | {args.queries} queries, video per pair | once per video | speed-up | one query | "
          f"{args.queries} / 1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for model in args.models:
        r = measure(model, args.queries, args.repeats)
        print(f"| {model} | {r['per_pair']:.0f} ms | {r['shared']:.0f} ms | {r['per_pair'] / r['shared']:.2f}x | "
              f"{r['one']:.1f} ms | {r['shared'] / r['one']:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
