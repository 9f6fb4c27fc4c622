"""Forward time of 100 queries on one video for the point models: video encoded per pair vs once per video.

    OMP_NUM_THREADS=1 python benchmarks/shared_video.py
"""

import time

import torch

import momentloc.models.point_layers as PL
from momentloc.config import load_config
from momentloc.data.random_batch import random_batch
from momentloc.models.base import InputSpec
from momentloc.models.build import build_model

torch.set_num_threads(1)
real = PL.first_row_per_video


def identity(group):
    """Every pair its own video (the behaviour before the shared encoding)."""
    r = torch.arange(group.shape[0])
    return r, r


@torch.no_grad()
def median_seconds(model: torch.nn.Module, batch, repeats: int) -> float:
    """Median forward time after one warm-up call."""
    model(batch)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model(batch)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


for name in ("viga_charades_sta", "sg_sci_charades_sta"):
    cfg = load_config(f"configs/experiment/{name}.yaml")
    spec = InputSpec(video_dim=cfg.data.feature_dim, text_dim=300, vocab_size=200, num_clips=cfg.data.num_clips)
    model = build_model(cfg, spec).eval()
    T = cfg.data.num_clips or cfg.data.max_clips or 128
    b = random_batch(100, T, cfg.data.feature_dim, num_words=10, text_dim=300, vocab_size=200, supervision="point", queries_per_video=100)
    one = random_batch(1, T, cfg.data.feature_dim, num_words=10, text_dim=300, vocab_size=200, supervision="point")
    res = {}
    for label, fn in (("per pair", identity), ("once per video", real)):
        PL.first_row_per_video = fn
        res[label] = (median_seconds(model, b, 3), median_seconds(model, one, 5))
    print(name, T, {k: f"100q {v[0]*1000:.0f} ms, 1q {v[1]*1000:.0f} ms, ratio {v[0]/v[1]:.1f}x" for k, v in res.items()})
