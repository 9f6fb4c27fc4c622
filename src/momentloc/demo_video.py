"""The demo's raw-video part: decode a video, extract features with the test encoder, localize, plot.

No trained image encoder ships (weights would be a download), so this path runs with ``TinyEncoder``:
fixed random convolution weights. A small span model learns colour words on generated colour videos
encoded by it; that model is then applied to a real video. Everything in the pipeline runs for real
(decoding, sampling at a fixed fps, batching frames through the encoder, pooling, the checkpoint's
feature-spec check, localization, plotting); only the answers on a real video mean nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from momentloc.types import Moment

if TYPE_CHECKING:
    from momentloc.predict import Predictor

COLOUR_FPS = 2.0
UNTRAINED_NOTE = (
    "UNTRAINED here: the frame encoder is TinyEncoder (fixed random weights, for tests), and the grounding\n"
    "model learned colour words on generated colour videos only, so its moments on a real video are not\n"
    "meaningful. What is real: decoding, 2 fps sampling, encoding, pooling, the checkpoint's feature-spec\n"
    "check, localization and the plot. For real answers extract CLIP features with a local weights file\n"
    "(momentloc extract VIDEOS --encoder clip --weights ViT-B-32.pt --fps 1 --out STORE) and train on them,\n"
    "or, untrained, ask CLIP directly: momentloc zero-shot --weights ViT-B-32.pt --video V --query \"...\"."
)


@dataclass
class ColourGrounder:
    """A span model trained on tiny-encoder features of generated colour videos."""

    checkpoint: Path
    videos: Path
    store: Path
    metrics: dict
    durations: dict = field(default_factory=dict)


def colour_config(root: Path, out: Path, features: Path, epochs: int = 1, hidden: int = 64) -> Any:
    """Config of a span model over colour videos' tiny features (32-d), with hashed word vectors."""
    from momentloc.config import validate

    return validate({
        "name": "colours",
        "data": {"dataset": "activitynet", "annotations": str(root), "features": str(features), "feature_dim": 32,
                 "train_split": "train", "val_split": "val_1", "test_split": "val_2",
                 "text": {"kind": "hash", "dim": 24, "max_words": 12}},
        "model": {"name": "span", "params": {"hidden": hidden}},
        "optim": {"name": "adamw", "lr": 0.005, "weight_decay": 1e-4},
        "train": {"epochs": epochs, "batch_size": 16, "out_dir": str(out), "progress": False},
    })


def colour_durations(root: Path) -> dict[str, float]:
    """Video id -> duration (s) over the colour dataset's three splits."""
    out: dict[str, float] = {}
    for split in ("train", "val_1", "val_2"):
        out.update({k: v["duration"] for k, v in json.loads((root / f"{split}.json").read_text()).items()})
    return out


def train_colour_grounder(work: Path, videos: int = 80, epochs: int = 12, seed: int = 0) -> ColourGrounder:
    """Write colour videos, extract their tiny-encoder features at 2 fps, train and test a span model."""
    from momentloc.encoders import TinyEncoder
    from momentloc.eval_run import evaluate_checkpoint
    from momentloc.training import train
    from momentloc.video import extract_features, list_videos, write_colour_dataset

    root = write_colour_dataset(work / "data", videos=videos, seed=seed)
    store = work / "features"
    res = extract_features(list_videos(root / "videos"), TinyEncoder(), COLOUR_FPS, store, progress=False)
    if res.failed:
        raise RuntimeError(f"colour videos failed to decode: {res.failed}")
    result = train(colour_config(root, work / "runs", store, epochs=epochs))
    ckpt = result.best_checkpoint or result.checkpoint
    metrics, _, _ = evaluate_checkpoint(ckpt, "test", [f"train.out_dir={work / 'runs'}"], breakdowns=False)
    return ColourGrounder(ckpt, root / "videos", store, metrics, colour_durations(root))


@dataclass
class VideoAnswer:
    """Moments for the queries on one video file, with timings."""

    video: Path
    duration: float
    queries: list[str]
    moments: list[list[Moment]]
    encode_seconds: float
    localize_seconds: float
    plot: Optional[Path] = None


def localize_video_file(pred: "Predictor", video: Path, queries: Sequence[str], top_k: int = 3,
                        plot: Optional[Path] = None, truth: Sequence[tuple[float, float]] = ()) -> VideoAnswer:
    """Decode and encode ``video`` once, ground every query, and plot the first one's timeline."""
    t0 = time.perf_counter()
    enc = pred.encode_video(video)
    t1 = time.perf_counter()
    moments = pred.localize(enc, list(queries), top_k=top_k)
    t2 = time.perf_counter()
    if plot is not None:
        from momentloc.viz import plot_timeline

        plot_timeline(plot, enc.duration, moments[0], windows=list(truth), query=queries[0], curve=pred.score_curve(enc, queries[0]))
    return VideoAnswer(Path(video), enc.duration, list(queries), moments, t1 - t0, t2 - t1, plot)


def charades_truth(video_id: str, queries: Sequence[str]) -> list[list[tuple[float, float]]]:
    """Per query, the Charades-STA windows of ``video_id`` with that sentence (all empty if the files are absent)."""
    from momentloc.data.formats import load_pairs
    from momentloc.paths import data_root

    out: list[list[tuple[float, float]]] = [[] for _ in queries]
    if not (data_root() / "charades_sta").exists():
        return out
    for split in ("train", "test"):
        for p in load_pairs("charades_sta", split):
            if p.video_id == video_id and p.query in queries:
                out[list(queries).index(p.query)].append(p.window)
    return out


def describe(answer: VideoAnswer, truths: Sequence[Sequence[tuple[float, float]]] = ()) -> list[str]:
    """Printable lines: per query its ground truth (when known) and its top moments."""
    lines = [f"{answer.video.name}: {answer.duration:.1f} s, decoded and encoded in {answer.encode_seconds:.2f} s; "
             f"{len(answer.queries)} queries localized in {answer.localize_seconds * 1000:.0f} ms (video encoded once)"]
    for i, (q, ms) in enumerate(zip(answer.queries, answer.moments)):
        truth = truths[i] if i < len(truths) else ()
        known = "  truth " + ", ".join(f"{s:.1f}-{e:.1f} s" for s, e in truth) if truth else ""
        lines.append(f'  "{q}"{known}')
        lines += [f"    {r}. {m.start:5.1f} s - {m.end:5.1f} s   score {m.score:.3f}" for r, m in enumerate(ms, 1)]
    return lines


def run_video_demo(out_dir: Path, say: Callable[[str], None] = print, video: Optional[Path] = None) -> dict:
    """Train the colour grounder, check it on a held-out colour video, then run it on ``video`` (the shipped clip)."""
    from momentloc.predict import Predictor

    t0 = time.perf_counter()
    grounder = train_colour_grounder(out_dir / "colours")
    say(f"colour grounder (span model, TinyEncoder features at {COLOUR_FPS:g} fps) trained in {time.perf_counter() - t0:.0f} s; "
        f"its test split: R1@0.5 {grounder.metrics['R1@0.5']:.1f}, R1@0.7 {grounder.metrics['R1@0.7']:.1f}, mIoU {grounder.metrics['mIoU']:.1f}")
    vid, entry = next(iter(json.loads((grounder.videos.parent / "val_2.json").read_text()).items()))
    pred = Predictor.from_checkpoint(grounder.checkpoint, device="cpu")
    answer = localize_video_file(pred, grounder.videos / f"{vid}.mp4", entry["sentences"][:2],
                                 plot=out_dir / "colour_video.png", truth=[tuple(entry["timestamps"][0])])
    say("trained path, a held-out generated colour video:")
    for line in describe(answer, [[tuple(w)] for w in entry["timestamps"][:2]]):
        say("  " + line)
    say(f"  timeline and score curve: {answer.plot}")
    out = {"colour_metrics": grounder.metrics, "checkpoint": str(grounder.checkpoint)}
    if video is None or not video.is_file():
        say("(no real video found; set MOMENTLOC_DATA to the folder holding demo/charades_Y1HGC.mp4)")
        return out
    queries = ["a person walks in a doorway drinking some coffee.", "person drinking a glass of water."]
    truths = charades_truth(video.stem.replace("charades_", ""), queries)
    real = localize_video_file(pred, video, queries, plot=out_dir / "own_video.png", truth=truths[0])
    say("the shipped real video (Charades-STA):")
    for line in describe(real, truths):
        say("  " + line)
    say(f"  timeline and score curve: {real.plot}")
    say(UNTRAINED_NOTE)
    out.update({"video": str(video), "moments": [[m.as_list() for m in ms] for ms in real.moments], "plot": str(real.plot)})
    return out
