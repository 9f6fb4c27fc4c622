"""Measurement functions of the performance suite: which config, which batch, and one timed call each.

``benchproc`` runs each of them in a process of its own (for its peak memory).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from momentloc.config import ExperimentConfig, apply_overrides, load_config, load_layers, validate
from momentloc.config_files import experiments_dir
from momentloc.data.random_batch import random_batch
from momentloc.data.text import PAD, UNK, Vocabulary
from momentloc.models.base import InputSpec
from momentloc.models.build import WeightedObjectives, build_model
from momentloc.registry import get_model_class

CONFIGS = experiments_dir()
DATASETS = ("charades_sta", "tacos", "activitynet")
DEFAULT_CLIPS = 128  # for configs that keep every video's own length (no num_clips / max_clips)
VOCAB_SIZE = 1000
NUM_WORDS = 12
VIDEO_SECONDS = 30.0
QUADRATIC = {"tan2d": "N x N moment map"}


@dataclass
class Options:
    """How to measure: device, precision, repeats, limits and (for tests) shape overrides."""

    device: str = "cpu"
    bf16: bool = False
    compile: bool = False
    quick: bool = False
    warmup: int = 2
    repeats: int = 10
    point_limit_s: float = 30.0  # one run longer than this stops the rest of its scaling row
    budget_s: float = 60.0  # time spent repeating one point before its median is taken
    mem_bound_gb: float = 4.0
    queries: int = 100
    query_batch: int = 64
    scaling_clips: tuple[int, ...] = (256, 1024, 4096, 16384, 65536)
    dataset: str = "charades_sta"
    quick_pairs: int = 4
    clips: Optional[int] = None  # overrides the config's clip count (tests)
    pairs: Optional[int] = None  # overrides the batch size in pairs (tests)
    isolate: bool = True
    threads: Optional[int] = None
    flops: bool = False  # count the training step's FLOPs (one extra, uncounted-time step)
    matmul_precision: Optional[str] = None  # fp32 matrix products; None: the config's train.matmul_precision


@dataclass
class Shape:
    """The batch a training step sees: videos x queries per video, clips, widths."""

    videos: int
    queries_per_video: int
    clips: int
    feature_dim: int
    text_dim: int
    paper_videos: int
    scaled: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        """Query-video pairs in the batch."""
        return self.videos * self.queries_per_video


def find_config(model: str, dataset: str = "charades_sta") -> tuple[Optional[Path], str]:
    """The experiment config to measure ``model`` with, and a note on how it was chosen.

    Preference: ``<model>_<dataset>.yaml``, then the first paper config of the
    model (the three benchmarks in order), then any config that names it (the
    synthetic ones). Configs that add plug-in objectives lose to plain ones.
    """
    own: list[tuple[int, int, Path]] = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        raw = load_layers(path)  # the model's name may come from a layer the config names in base:
        if (raw.get("model") or {}).get("name") != model:
            continue
        stem = path.stem
        ds_rank = next((i for i, d in enumerate(DATASETS) if stem.endswith("_" + d)), len(DATASETS))
        if stem.endswith("_" + dataset):
            ds_rank = -1
        own.append((ds_rank, 1 if raw.get("objectives") else 0, path))
    if not own:
        return None, "no config names this model: built with its defaults"
    rank, _, path = min(own, key=lambda t: (t[0], t[1], t[2].name))
    if rank == -1:
        return path, path.name
    if rank < len(DATASETS):
        return path, f"{path.name} (no {dataset} config)"
    return path, f"{path.name} (no paper config)"


def load(path: Optional[Path], model: str, overrides: Optional[list[str]] = None) -> ExperimentConfig:
    """The validated config (a bare one with the model's defaults when ``path`` is None)."""
    if path is None:
        raw: dict[str, Any] = {"data": {"dataset": "none", "feature_dim": 1024}, "model": {"name": model}}
        return validate(apply_overrides(raw, overrides or []), f"<defaults of {model}>")
    return load_config(path, overrides)


def shape_for(cfg: ExperimentConfig, opts: Options) -> Shape:
    """The training batch of the config (videos, queries per video, clips), scaled down under --quick."""
    qpv = max(1, cfg.data.queries_per_video)
    videos = paper = max(1, cfg.train.batch_size)
    notes: list[str] = []
    clips = opts.clips or cfg.data.num_clips or cfg.data.max_clips
    if clips is None:
        clips = DEFAULT_CLIPS
        notes.append(f"variable-length config: {DEFAULT_CLIPS} clips assumed")
    scaled = False
    if opts.pairs is not None:
        videos, scaled = max(1, opts.pairs // qpv), True
    elif opts.quick and videos * qpv > opts.quick_pairs:
        videos, scaled = max(1, opts.quick_pairs // qpv), True
    return Shape(videos, qpv, clips, cfg.data.feature_dim, cfg.data.text.dim, paper, scaled, notes)


def make_vocab(size: int, dim: int, seed: int = 0) -> Vocabulary:
    """A vocabulary of ``size`` made-up words with seeded random vectors (row 0 padding)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size, dim)).astype(np.float32)
    vectors[0] = 0.0
    return Vocabulary([PAD, UNK] + [f"w{i}" for i in range(size - 2)], vectors)


def build(model: str, cfg: ExperimentConfig, opts: Options) -> tuple[torch.nn.Module, WeightedObjectives, Vocabulary]:
    """The model and its configured objectives on ``opts.device``, and the vocabulary they were built for."""
    torch.set_float32_matmul_precision(opts.matmul_precision or cfg.train.matmul_precision)  # as the trainer sets it
    vocab = make_vocab(VOCAB_SIZE, cfg.data.text.dim)
    spec = InputSpec(video_dim=cfg.data.feature_dim, text_dim=vocab.dim, vocab_size=len(vocab), num_clips=cfg.data.num_clips)
    torch.manual_seed(0)
    net = build_model(cfg, spec)
    objectives = WeightedObjectives(cfg, net)
    return net.to(opts.device), objectives.to(opts.device), vocab


def make_batch(model: str, shape: Shape, pairs: int, clips: int, device: str, seed: int = 0) -> Any:
    """Random features and labels of the model's supervision; queries of one video share its clips."""
    sup = get_model_class(model).supervision
    qpv = min(shape.queries_per_video, pairs)
    return random_batch(pairs, clips, shape.feature_dim, num_words=NUM_WORDS, text_dim=shape.text_dim,
                        vocab_size=VOCAB_SIZE, supervision=sup, queries_per_video=qpv, seed=seed,
                        duration=VIDEO_SECONDS).to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_calls(fn: Callable[[], Any], opts: Options) -> dict[str, Any]:
    """Median milliseconds of ``fn`` after warm-up; stops repeating once ``opts.budget_s`` is spent.

    A warm-up call that takes a quarter of the budget counts as a run: at that
    size the first-call overheads are noise, and one run says enough. Not the
    first call on a GPU or under ``torch.compile``, whose set-up can take seconds.
    """
    times: list[float] = []
    first = 0.0
    begin = time.perf_counter()
    for i in range(opts.warmup + opts.repeats):
        _sync(opts.device)
        t0 = time.perf_counter()
        fn()
        _sync(opts.device)
        dt = time.perf_counter() - t0
        if i == 0:
            first = dt
            if opts.compile:  # compilation is not a step: the budget starts after it
                begin = time.perf_counter()
        # On a GPU the first call carries one-time set-up (cuDNN plans, allocator growth): never a run.
        first_is_setup = i == 0 and (opts.compile or opts.device.startswith("cuda"))
        if i >= opts.warmup or (dt > opts.budget_s / 4 and not first_is_setup):
            times.append(dt)
        if time.perf_counter() - begin > opts.budget_s and times:
            break
    return {"ms": 1e3 * statistics.median(times), "runs": len(times), "first_ms": 1e3 * first,
            "over_limit": min(times) > opts.point_limit_s}


def _autocast(opts: Options) -> Any:
    dev = "cuda" if opts.device.startswith("cuda") else "cpu"
    return torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=opts.bf16)


def _compiled(net: torch.nn.Module, opts: Options) -> torch.nn.Module:
    return torch.compile(net) if opts.compile else net  # type: ignore[return-value]


def optimizer(cfg: ExperimentConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The config's optimiser (as the trainer builds it, without the schedule)."""
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay)
    cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    return cls(params, lr=o.lr, weight_decay=o.weight_decay)


def step_fn(net: torch.nn.Module, objectives: WeightedObjectives, cfg: ExperimentConfig, batch: Any,
            opts: Options) -> Callable[[], None]:
    """One training step: forward, model loss plus weighted objectives, backward, clipping, optimiser step."""
    params = [p for p in list(net.parameters()) + list(objectives.parameters()) if p.requires_grad]
    opt = optimizer(cfg, params)
    fwd = _compiled(net, opts)
    net.train()
    objectives.train()

    def step() -> None:
        with _autocast(opts):
            out = fwd(batch)
            total = objectives(out, batch, net.loss(out, batch)["total"])["total"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        opt.step()

    return step


def train_step(model: str, cfg: ExperimentConfig, shape: Shape, opts: Options) -> dict[str, Any]:
    """Forward + loss (with objectives) + backward + optimiser step at the config's batch."""
    net, objectives, _ = build(model, cfg, opts)
    batch = make_batch(model, shape, shape.pairs, shape.clips, opts.device)
    step = step_fn(net, objectives, cfg, batch, opts)
    res = time_calls(step, opts)
    res["params"] = sum(p.numel() for p in net.parameters())
    if opts.flops:
        res["flops"] = count_flops(step)
        res["tflop_per_s"] = res["flops"] / (res["ms"] / 1e3) / 1e12
    return res


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (matrix products and convolutions, forward and backward),
    as torch's FlopCounterMode counts them: 2 per multiply-add."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def infer(model: str, cfg: ExperimentConfig, shape: Shape, opts: Options, clips: Optional[int] = None) -> dict[str, Any]:
    """Latency of one query (forward + decode of the top 5) on one video of ``clips`` clips."""
    net, _, _ = build(model, cfg, opts)
    net.eval()
    fwd = _compiled(net, opts)
    batch = make_batch(model, shape, 1, clips or shape.clips, opts.device)

    @torch.no_grad()
    def call() -> None:
        with _autocast(opts):
            net.decode(fwd(batch), batch, 5)

    return time_calls(call, opts)


def throughput(model: str, cfg: ExperimentConfig, shape: Shape, opts: Options) -> dict[str, Any]:
    """Predictor path: one video encoded once, ``opts.queries`` queries answered in batches; and one query alone
    through the same path (tokenizing, batching, forward, decode), against which the batch cost is compared."""
    from momentloc.predict import Predictor

    net, _, vocab = build(model, cfg, opts)
    pred = Predictor.from_model(_compiled(net, opts), vocab, cfg, device=opts.device)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((shape.clips, shape.feature_dim)).astype(np.float32)
    enc = pred.encode_video(feats, duration=VIDEO_SECONDS)
    queries = [" ".join(f"w{j}" for j in rng.integers(0, VOCAB_SIZE - 2, NUM_WORDS)) for _ in range(opts.queries)]
    done = 0
    with _autocast(opts):
        # Warm-up. A GPU (or compiled model) sets up per batch shape: warm up on every chunk size the timed
        # loop will see (a full batch and the remainder), else the first batch of the timed loop carries it.
        setup = opts.compile or opts.device.startswith("cuda")
        sizes = {min(opts.query_batch, len(queries)), len(queries) % opts.query_batch} - {0} if setup else {2}
        for n in sorted(sizes):
            pred.localize(enc, queries[:n], batch_size=opts.query_batch)
        _sync(opts.device)
        t0 = time.perf_counter()
        # Batch by batch, as localize does, so that a slow model stops once the budget is spent.
        while done < len(queries) and (done == 0 or time.perf_counter() - t0 < opts.budget_s):
            chunk = queries[done : done + opts.query_batch]
            pred.localize(enc, chunk, batch_size=opts.query_batch)
            done += len(chunk)
        _sync(opts.device)
        sec = time.perf_counter() - t0
        one = time_calls(lambda: pred.localize(enc, queries[:1]), opts)  # the same path for a single query
    qps = done / sec
    return {"ms": 1e3 * len(queries) / qps, "queries": len(queries), "measured_queries": done,
            "batch_size": opts.query_batch, "qps": qps, "one_query_ms": one["ms"]}


def scaled_overrides(model: str, cfg: ExperimentConfig, clips: int) -> tuple[list[str], str]:
    """Config changes that let ``model`` take a video of ``clips`` clips, and what they mean."""
    fields = get_model_class(model).Config.model_fields
    params = cfg.model.params
    over: list[str] = []
    note = ""
    if cfg.data.num_clips is not None:
        over.append(f"data.num_clips={clips}")
    if model == "tan2d":
        # Hold the config's seconds per map cell: N grows with the video, the map as N^2.
        n0 = int(params.get("map_size", fields["map_size"].default))
        ratio = max(1, (cfg.data.num_clips or n0) // n0)
        n = max(1, clips // ratio)
        over.append(f"model.params.map_size={n}")
        note = f"N={n}"
    elif "max_clips" in fields:
        have = int(params.get("max_clips", fields["max_clips"].default))
        if have < clips:
            over.append(f"model.params.max_clips={clips}")
    return over, note


def quadratic_estimate_gb(model: str, cfg: ExperimentConfig) -> float:
    """Estimated GB of the live N x N maps of one query (0 for models without one)."""
    if model != "tan2d":
        return 0.0
    p = cfg.model.params
    fields = get_model_class(model).Config.model_fields
    n = int(p.get("map_size", fields["map_size"].default))
    h = int(p.get("hidden_size", fields["hidden_size"].default))
    # About six H x N x N float tensors are alive at once inside the adjacent network.
    return 6 * 4 * h * n * n / 2**30


def exponent(points: list[dict[str, Any]]) -> Optional[float]:
    """Growth exponent k of time ~ clips^k between the last two measured points of at least 1k clips."""
    ok = [p for p in points if "ms" in p and p["clips"] >= 1024]
    if len(ok) < 2:
        return None
    a, b = ok[-2], ok[-1]
    return math.log(b["ms"] / a["ms"]) / math.log(b["clips"] / a["clips"])


def as_dict(shape: Shape) -> dict[str, Any]:
    """JSON form of a shape."""
    d = asdict(shape)
    d["pairs"] = shape.pairs
    return d
