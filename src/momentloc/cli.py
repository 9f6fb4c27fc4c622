"""`momentloc` command line: thin wrappers over the library (heavy imports stay inside commands)."""

from __future__ import annotations

import json
import numbers
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from momentloc.files import write_text_atomic

# Plain help pages (no type column: flags show no "<bool>") that fit 80 columns; -h as well as --help.
_HELP = {"help_option_names": ["-h", "--help"], "max_content_width": 80}
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, context_settings=_HELP,
                  help="Find the moment in a video that a sentence describes.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, context_settings=_HELP,
                       help="Annotations, features, synthetic data and point labels.")
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"momentloc {version('momentloc')}")
        except PackageNotFoundError:
            typer.echo("momentloc (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _root(show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                            help="Print the version and exit.")) -> None:
    """Find the moment in a video that a sentence describes."""


SetOpt = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override a config key: a.b.c=value (repeatable).")
MAX_CLIPS_DEFAULT = 4096  # momentloc.video.DEFAULT_MAX_CLIPS, repeated so `--help` needs no heavy import
MaxClipsOpt = typer.Option(MAX_CLIPS_DEFAULT, "--max-clips", min=1,
                           help="Longest video accepted, in clips (frames sampled at the feature fps, pooled); "
                                "raise it for longer videos (memory and time grow with it).")


def _console():
    from rich.console import Console

    return Console()


def _print_metrics(metrics: dict, title: str) -> None:
    from rich.table import Table

    keys = [k for k in metrics if "/" not in k and k != "n" and isinstance(metrics[k], (int, float))]
    table = Table(title=title)
    for k in keys:
        table.add_column(k, justify="right")
    table.add_row(*[f"{float(metrics[k]):.2f}" for k in keys])
    _console().print(table)


def _summary(doc: Optional[str]) -> str:
    """A docstring's first paragraph on one line (a sentence broken over lines stays whole)."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


@app.command("list")
def list_cmd() -> None:
    """List registered models, objectives, datasets and shipped configs."""
    import textwrap

    from momentloc.config_files import experiment_names
    from momentloc.data.formats import DATASETS
    from momentloc.registry import get_model_class, model_names, objective_names, text_encoder_names

    def show(head: str, text: str = "") -> None:
        lines = textwrap.wrap(text, 80 - 23) or [""]
        typer.echo(f"  {head:<20} {lines[0]}".rstrip())
        for line in lines[1:]:
            typer.echo(f"  {'':<20} {line}")

    typer.echo("models (name, supervision)")
    for name in model_names():
        cls = get_model_class(name)
        show(f"{name} ({cls.supervision})", _summary(cls.__doc__))
    typer.echo("objectives")
    for name in objective_names():
        show(name)
    typer.echo("text encoders (data.text.kind)")
    for name in text_encoder_names():
        show(name)
    typer.echo("datasets")
    for name, info in DATASETS.items():
        about = f"{info.summary}; " if info.summary else ""
        show(name, f"{about}splits: {', '.join(info.splits)}; headline metric {info.protocol.headline}")
    typer.echo("experiment configs (momentloc train NAME works from any folder)")
    for name in experiment_names():
        show(name)


@app.command()
def train(
    config: Path = typer.Argument(..., help="Experiment YAML, or a shipped config's name (momentloc list)."),
    set_: Optional[List[str]] = SetOpt,
    resume: Optional[str] = typer.Option(None, help="Checkpoint to resume from, or 'last' for the run's last.ckpt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the checkpoints of an earlier run of the same "
                                                              "name (else such a run folder is refused)."),
) -> None:
    """Train a model from a config; the checkpoint is selected on the validation split."""
    from momentloc.config import load_config
    from momentloc.config_files import resolve_config
    from momentloc.errors import MomentlocError
    from momentloc.training import train as run

    if resume is not None and overwrite:
        raise MomentlocError("give --resume or --overwrite, not both")
    cfg = load_config(resolve_config(config), set_ or [])
    result = run(cfg, resume=resume, overwrite=overwrite)
    _print_metrics(result.metrics, f"{cfg.name}: validation (last epoch)")
    typer.echo(f"checkpoint: {result.best_checkpoint or result.checkpoint}")
    typer.echo(f"last: {result.checkpoint}   time: {result.seconds:.1f} s")


@app.command("eval")
def eval_cmd(
    checkpoint: Path = typer.Argument(..., help="A momentloc checkpoint (.ckpt)."),
    split: str = typer.Option("test", help="train, val or test (the config's names)."),
    set_: Optional[List[str]] = SetOpt,
    devices: Optional[int] = typer.Option(None, help="Devices (processes) to evaluate with."),
    out: Optional[Path] = typer.Option(None, help="Write metrics JSON here."),
    predictions: Optional[Path] = typer.Option(None, help="Write predictions jsonl here."),
    report: Optional[Path] = typer.Option(None, help="Write a Markdown report with figures into this folder."),
) -> None:
    """Evaluate a checkpoint on a split: print the table, write metrics and predictions."""
    from momentloc.eval_run import evaluate_checkpoint
    from momentloc.metrics.predictions import write_predictions_jsonl
    from momentloc.metrics.table import metrics_table

    start = time.perf_counter()
    metrics, preds, pairs = evaluate_checkpoint(checkpoint, split, set_ or [], devices=devices)
    seconds = time.perf_counter() - start
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return
    typer.echo(metrics_table(metrics))
    typer.echo(_rate_line(len(pairs), seconds, "loading included"))
    moments = [preds.get(i, []) for i in range(len(pairs))]
    if out:
        _write_json(out, metrics)
    if predictions:
        write_predictions_jsonl(predictions, pairs, moments)
    if report:
        from momentloc.report import write_report

        write_report(report, metrics, pairs, moments, title=f"{checkpoint.name} on {split}")
        typer.echo(f"report: {report / 'report.md'}")


@app.command()
def evaluate(
    dataset: str = typer.Option(..., help="charades_sta, tacos, activitynet, didemo, qvhighlights (momentloc list)."),
    split: str = typer.Option(..., help="The dataset's split name, e.g. test, val_2."),
    predictions: Path = typer.Option(..., help="Predictions file (QVH jsonl, CSV/jsonl rows, DiDeMo rankings)."),
    missing: str = typer.Option("error", help="'error' or 'miss': score missing queries as misses."),
    root: Optional[Path] = typer.Option(None, help="Annotation folder (default $MOMENTLOC_DATA/<dataset>)."),
    out: Optional[Path] = typer.Option(None, help="Write metrics JSON here."),
    strict: bool = typer.Option(False, "--strict", help="Refuse windows more than 1 s outside the video instead of "
                                                        "clipping them to it."),
) -> None:
    """Score any system's predictions file with the dataset's protocol (no model, no features)."""
    from momentloc.data.formats import load_pairs
    from momentloc.metrics.evaluator import evaluate_predictions
    from momentloc.metrics.predictions import load_predictions
    from momentloc.metrics.table import metrics_table

    if missing not in ("error", "miss"):
        raise typer.BadParameter(f"expected 'error' or 'miss', got {missing!r}", param_hint="'--missing'")
    pairs = load_pairs(dataset, split, root=root)
    metrics = evaluate_predictions(pairs, load_predictions(predictions), dataset, missing=missing,  # type: ignore[arg-type]
                                   strict=strict)
    typer.echo(metrics_table(metrics))
    if metrics.get("missing_scored_as_miss"):
        typer.echo(f"note: {_plural(int(metrics['missing_scored_as_miss']), 'missing query', 'missing queries')} "
                   "scored as misses")
    if metrics.get("clipped_windows"):
        typer.echo(f"note: {_plural(int(metrics['clipped_windows']), 'window')} past the video clipped to it "
                   "(--strict refuses them)")
    if metrics.get("completed_rankings"):
        typer.echo(f"note: {metrics['completed_rankings']} rankings held fewer than 5 segments and were completed with "
                   "the segments nearest their top-1 (Rank@5 counts those)")
    if out:
        _write_json(out, metrics)


@data_app.command("stats")
def data_stats(
    dataset: str = typer.Argument(..., help="Dataset name."),
    split: Optional[str] = typer.Option(None, help="One split (default: every split)."),
    root: Optional[Path] = typer.Option(None, help="Annotation folder."),
    plot: Optional[Path] = typer.Option(None, help="Draw the distributions to this image."),
) -> None:
    """Counts, durations, moment-length and moment-position distributions."""
    from momentloc.data.formats import DATASETS, load_pairs
    from momentloc.data.stats import dataset_stats, format_stats, plot_stats

    if dataset not in DATASETS:
        raise typer.BadParameter(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    splits = [split] if split else list(DATASETS[dataset].splits)
    pairs_all = []
    for s in splits:
        pairs = load_pairs(dataset, s, root=root)
        pairs_all.extend(pairs)
        typer.echo(format_stats(dataset_stats(pairs), title=f"{dataset} {s}"))
    if plot:
        plot_stats(pairs_all, plot, title=f"{dataset} {'+'.join(splits)}")
        typer.echo(f"plot: {plot}")


@data_app.command("convert")
def data_convert(src: Path, dst: Path) -> None:
    """Convert a feature store between a folder of .npy, one .npz and one .hdf5."""
    from momentloc.data.features import convert_store

    n = convert_store(src, dst)
    typer.echo(f"wrote {n} videos to {dst}")


@data_app.command("synth")
def data_synth(
    size: str = typer.Option("ci", help="ci, bench or long."),
    out: Path = typer.Option(None, help="Output folder (default artifacts/synthetic/<size>)."),
    seed: int = typer.Option(0),
) -> None:
    """Generate the compositional synthetic benchmark."""
    from momentloc.data.synthetic import SIZES, ensure_synthetic

    if size not in SIZES:
        raise typer.BadParameter(f"unknown size {size!r}; known: {', '.join(SIZES)}", param_hint="'--size'")
    root = ensure_synthetic(out or Path("artifacts/synthetic") / size, size=size, seed=seed)
    typer.echo(f"synthetic benchmark ({size}) at {root}")


@data_app.command("simulate")
def data_simulate(
    dataset: str = typer.Argument(..., help="charades: the simulated Charades-STA."),
    out: Path = typer.Option(..., help="Output folder (features.hdf5, meta.json, classes.tsv)."),
    seed: int = typer.Option(0, help="The simulated world; another seed is another world of the same difficulty."),
    dim: int = typer.Option(1024, help="Feature dimension (1024 as I3D; smaller for quick runs)."),
    rate: float = typer.Option(4.0, help="Clips per second of video."),
    max_videos: Optional[int] = typer.Option(None, help="Simulate a slice: this many train videos and a quarter as many test videos."),
    knob: List[str] = typer.Option([], "--knob", help="Any other knob as name=value (phases, actor, objects, jitter, "
                                   "faint, noise, nuisance, smoothing, ...); 0 switches a property off."),
    root: Optional[Path] = typer.Option(None, help="Charades-STA annotation folder (default $MOMENTLOC_DATA/charades_sta)."),
) -> None:
    """Simulate clip features for Charades-STA from Charades' real action timelines."""
    from momentloc.data.simulate import DATASETS, simulate_charades, spec_from
    from momentloc.paths import data_root

    if dataset not in DATASETS:
        raise typer.BadParameter(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    values: dict = {"seed": seed, "dim": dim, "rate": rate, "max_videos": max_videos}
    for item in knob:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--knob {item!r}: expected name=value")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(f"--knob {item!r}: {value!r} is not a number") from None
    try:
        spec = spec_from(values)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    folder = simulate_charades(root or data_root() / "charades_sta", out, spec, progress=sys.stderr.isatty())
    typer.echo(f"simulated Charades-STA features at {folder / 'features.hdf5'} (meta.json, classes.tsv beside it)")


@data_app.command("glance")
def data_glance(
    dataset: str = typer.Argument(...),
    split: str = typer.Argument(...),
    out: Path = typer.Option(..., help="Output json: a list of [vid, duration, [start, end], sentence, glance]."),
    seed: int = typer.Option(0),
    root: Optional[Path] = typer.Option(None),
) -> None:
    """Generate point labels: one seeded uniform draw inside each moment."""
    from momentloc.data.formats import load_pairs
    from momentloc.data.points import generate_glance

    pairs = generate_glance(load_pairs(dataset, split, root=root), seed)
    rows = [[p.video_id, p.duration, list(p.window), p.query, round(float(p.point), 3)] for p in pairs]  # type: ignore[arg-type]
    _write_json(out, rows)
    typer.echo(f"wrote {len(rows)} point labels to {out}")


def _strict_json(obj: object) -> object:
    """``obj`` with NaN (a metric of an empty breakdown) as null: plain JSON, which jq and browsers read."""
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict_json(v) for v in obj]
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):  # float, numpy floats
        value = float(obj)
        return None if value != value else value
    return obj


def _plural(n: int, word: str, many: Optional[str] = None) -> str:
    """``1 query``, ``2 queries``."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def _report_moments(out: Optional[Path], queries: list[str], results: list, title: str, seconds: float,
                    note: str) -> None:
    """Write the moments to ``out`` (JSON lines) or print them, then the throughput line."""
    if out is not None:
        _write_moments(out, queries, results)
        typer.echo(f"moments: {out}")
    else:
        _print_moments(queries, results, title)
    typer.echo(_rate_line(len(queries), seconds, note))


def _rate_line(queries: int, seconds: float, note: str) -> str:
    """The throughput line of ``eval`` and ``predict``: N queries in X s (Y queries/s, note)."""
    return f"{_plural(queries, 'query', 'queries')} in {seconds:.2f} s ({queries / max(seconds, 1e-9):.0f} queries/s, {note})"


def _write_json(path: Path, obj: object) -> None:
    write_text_atomic(path, json.dumps(_strict_json(obj), indent=1, default=float, allow_nan=False))


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Where runs and checkpoints go."),
    epochs: Optional[int] = typer.Option(None, help="Override the training epochs."),
    model: str = typer.Option("span", help="Which *_synthetic_ci.yaml model to train."),
) -> None:
    """The main job: synthetic benchmark, train, evaluate, localize, and the shipped annotations."""
    from momentloc.demo import run_demo

    run_demo(out, epochs, model)


@app.command()
def extract(
    videos: List[Path] = typer.Argument(..., help="Video files or folders of videos."),
    out: Path = typer.Option(..., "--out", help="Feature store: a folder of .npy (or a .npz / .h5 file)."),
    encoder: str = typer.Option("tiny", help="tiny (built-in test encoder) or clip (open_clip, needs --weights)."),
    weights: Optional[Path] = typer.Option(None, help="Local encoder weights file (nothing is downloaded)."),
    model: str = typer.Option("ViT-B-32", help="open_clip architecture name for --encoder clip."),
    fps: float = typer.Option(1.0, help="Frames sampled per second (by timestamp; variable frame rate is fine)."),
    frames_per_clip: int = typer.Option(1, help="Sampled frames mean-pooled into one clip feature."),
    batch_size: int = typer.Option(32, help="Frames per encoder batch."),
    resume: bool = typer.Option(True, help="Skip videos the store already holds."),
    device: str = typer.Option("cpu", help="Torch device for the encoder."),
    max_clips: int = MaxClipsOpt,
) -> None:
    """Decode videos at a fixed fps, encode frames, pool to clips, write a feature store (resumable)."""
    from momentloc.predict import check_device
    from momentloc.video import check_sampling, extract_features, list_videos, load_encoder

    check_sampling(fps, frames_per_clip, "--fps / --frames-per-clip")
    if batch_size < 1:
        raise typer.BadParameter(f"--batch-size must be at least 1, got {batch_size}")
    files = [f for v in videos for f in (list_videos(v) if v.is_dir() else [v])]
    enc = load_encoder(encoder, weights, model=model, device=check_device(device))
    res = extract_features(files, enc, fps, out, batch_size=batch_size, resume=resume, frames_per_clip=frames_per_clip,
                           max_clips=max_clips)
    typer.echo(f"{len(res.done)} extracted, {len(res.skipped)} already done, {len(res.failed)} failed -> {res.store}")
    for path, reason in res.failed:
        typer.echo(f"failed: {path}: {reason}", err=True)
    if res.failed:
        sys.exit(1)


def _read_queries(path: Path) -> list[str]:
    from momentloc.data.formats import read_text

    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def _write_moments(path: Path, queries: List[str], results: list) -> None:
    """One JSON line per query: the query and its moments as [start, end, score] (seconds)."""
    lines = [json.dumps({"query": q, "moments": [[round(m.start, 3), round(m.end, 3), round(m.score, 6)] for m in ms]})
             for q, ms in zip(queries, results)]
    write_text_atomic(path, "\n".join(lines) + "\n")


def _print_moments(queries: List[str], results: list, video: str) -> None:
    from rich.table import Table

    for q, moments in zip(queries, results):
        table = Table(title=f'"{q}"  ({video})')
        for col in ("#", "start (s)", "end (s)", "score"):
            table.add_column(col, justify="right")
        for i, m in enumerate(moments, 1):
            table.add_row(str(i), f"{m.start:.2f}", f"{m.end:.2f}", f"{m.score:.4f}")
        _console().print(table)


@app.command()
def predict(
    checkpoint: Path = typer.Option(..., help="A momentloc checkpoint (.ckpt)."),
    query: List[str] = typer.Option([], help="The sentence to ground (repeatable)."),
    queries_file: Optional[Path] = typer.Option(None, help="More sentences, one per line (blank lines skipped)."),
    out: Optional[Path] = typer.Option(None, help="Write the moments as JSON lines here instead of printing tables."),
    batch_size: int = typer.Option(64, min=1, help="Queries per forward pass."),
    video: Optional[Path] = typer.Option(None, help="A video file (encoded as the checkpoint's features were)."),
    features: Optional[Path] = typer.Option(None, help="Clip features [T, D] as .npy (instead of --video)."),
    duration: Optional[float] = typer.Option(None, help="Video duration in seconds (with --features)."),
    top_k: int = typer.Option(5, min=1, max=1000, help="Moments per query."),
    plot: Optional[Path] = typer.Option(None, help="Draw the moments and the score curve to this PNG (first query)."),
    map_png: Optional[Path] = typer.Option(None, "--map", help="Draw the model's own map to this PNG (first query): "
                                           "the 2D-TAN score map or the FSAN alignment map."),
    weights: Optional[Path] = typer.Option(None, help="Encoder weights, if not where the feature spec recorded them."),
    device: Optional[str] = typer.Option(None, help="Torch device (default: cuda if available)."),
    max_clips: int = MaxClipsOpt,
) -> None:
    """Print the top moments (start, end, score in seconds) for each query on a video or its features."""
    from momentloc.errors import MomentlocError
    from momentloc.predict import Predictor, check_device, read_features_file

    if (video is None) == (features is None):
        raise MomentlocError("give exactly one of --video or --features")
    for flag, path in (("--out", out), ("--plot", plot), ("--map", map_png)):
        if path is not None and path.is_dir():
            raise MomentlocError(f"{flag} {path}: is a folder; expected a file name to write")
    for flag, path in (("--plot", plot), ("--map", map_png)):
        if path is not None and path.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise MomentlocError(f"{flag} {path}: expected a .png, .svg or .pdf file name")
    if device is not None:
        check_device(device)
    query = list(query) + (_read_queries(queries_file) if queries_file is not None else [])
    if not query:
        raise MomentlocError("give at least one --query (or a --queries-file)")
    pred = Predictor.from_checkpoint(checkpoint, device=device, weights=weights, max_clips=max_clips)
    if video is not None:
        enc = pred.encode_video(video)
    else:
        feats = read_features_file(features, max_clips)
        duration = _features_duration(pred, feats, duration, features)
        enc = pred.encode_video(feats, duration=duration, source=str(features))
    start = time.perf_counter()
    results = pred.localize(enc, query, top_k=top_k, batch_size=batch_size)
    _report_moments(out, query, results, f"{enc.name}, {enc.duration:.1f} s", time.perf_counter() - start,
                    "the video's encoding excluded")
    if plot:
        from momentloc.viz import plot_timeline

        plot_timeline(plot, enc.duration, results[0], query=query[0], curve=pred.score_curve(enc, query[0]))
        typer.echo(f"plot: {plot}")
    if map_png:
        from momentloc.viz import plot_model_map

        out = pred.raw_output(enc, query[0])
        if plot_model_map(map_png, out.tensors, pred.query_tokens(query[0]), enc.duration) is None:
            raise MomentlocError(f"model {pred.cfg.model.name!r} has no map to plot (tan2d and fsan have one)")
        typer.echo(f"map: {map_png}")


def _features_duration(pred, feats, duration: Optional[float], path: Path) -> float:  # noqa: ANN001
    """The duration of a features file: ``--duration``, else what the feature spec's clip length gives; a duration far
    from what the clips cover at the spec's rate is refused."""
    from momentloc.errors import MomentlocError

    spec = pred.feature_spec
    clips = int(feats.shape[0]) if getattr(feats, "ndim", 0) >= 1 else 0
    covered = clips * spec.clip_seconds if spec is not None and clips else None
    if duration is None:
        if covered is None:
            raise MomentlocError("--features needs --duration (seconds): the checkpoint carries no feature spec to take "
                                 "it from")
        return covered
    if covered is not None and duration == duration and duration > 0 and not covered / 2 <= duration <= covered * 2 + 1:
        raise MomentlocError(f"--duration {duration:g} s does not fit {path}: {clips} clips of "
                             f"{spec.clip_seconds:g} s ({spec.describe()}) cover {covered:g} s")
    return duration


@app.command("zero-shot")
def zero_shot(
    video: Path = typer.Option(..., help="A video file."),
    query: List[str] = typer.Option([], help="The sentence to ground (repeatable)."),
    queries_file: Optional[Path] = typer.Option(None, help="More sentences, one per line (blank lines skipped)."),
    weights: Optional[Path] = typer.Option(None, help="Local CLIP weights file (open_clip; nothing is downloaded)."),
    encoder: str = typer.Option("clip", help="An encoder with a text tower: clip (or clip:ARCH)."),
    model: str = typer.Option("ViT-B-32", help="open_clip architecture name of the weights."),
    fps: float = typer.Option(1.0, help="Frames sampled per second."),
    frames_per_clip: int = typer.Option(1, help="Sampled frames mean-pooled into one clip."),
    top_k: int = typer.Option(5, min=1, max=1000, help="Moments per query."),
    out: Optional[Path] = typer.Option(None, help="Write the moments as JSON lines here instead of printing tables."),
    device: str = typer.Option("cpu", help="Torch device for the encoder."),
    max_clips: int = MaxClipsOpt,
) -> None:
    """Untrained moments from CLIP image-text similarity per clip (no checkpoint): coarse, for a first look."""
    from momentloc import encoders
    from momentloc.errors import DataError, MomentlocError
    from momentloc.predict import check_device
    from momentloc.zero_shot import check_text_encoder, localize_zero_shot

    if out is not None and out.is_dir():
        raise MomentlocError(f"--out {out}: is a folder; expected a file name to write")
    query = list(query) + (_read_queries(queries_file) if queries_file is not None else [])
    if not query:
        raise MomentlocError("give at least one --query (or a --queries-file)")
    if not video.is_file():
        raise DataError(video, "video file not found")
    enc = encoders.load_encoder(encoder, weights, model=model, device=check_device(device))
    check_text_encoder(enc)  # before the video is decoded
    start = time.perf_counter()
    results = localize_zero_shot(enc, video, query, top_k=top_k, fps=fps, frames_per_clip=frames_per_clip,
                                 max_clips=max_clips)
    _report_moments(out, query, results, f"{video.name}, zero-shot {enc.name}", time.perf_counter() - start,
                    "the video's encoding included")


@app.command()
def serve(
    checkpoint: Path = typer.Option(..., help="A momentloc checkpoint (.ckpt) trained on features with a feature spec."),
    videos: Path = typer.Option(..., help="Folder of videos to serve (uploads are stored here too)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(200.0, help="Largest accepted upload."),
    weights: Optional[Path] = typer.Option(None, help="Encoder weights, if not where the feature spec recorded them."),
    device: Optional[str] = typer.Option(None, help="Torch device (default: cuda if available)."),
    max_clips: int = MaxClipsOpt,
) -> None:
    """Run the demo page and JSON API (OpenAPI at /api/openapi.json) over a folder of videos."""
    from momentloc.server.app import serve as run

    run(checkpoint, videos, host=host, port=port, max_upload_mb=max_upload_mb, device=device, weights=weights,
        max_clips=max_clips, announce=lambda: typer.echo(f"serving {videos} on http://{host}:{port}/"))


def _usage_exit(err: Exception) -> Optional[int]:
    """Print a command-line usage error as one line; its exit code, or None when ``err`` is not one."""
    # typer may vendor its own click, so the exception is recognised by shape, not by class.
    if not (callable(getattr(err, "format_message", None)) and isinstance(getattr(err, "exit_code", None), int)):
        return None
    if type(err).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
        ctx = getattr(err, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(str(err.format_message()).split())
        typer.echo(f"error: {message}{hint}", err=True)
    return int(err.exit_code)


def _one_line_skips() -> None:
    """Show each skipped annotation row as one ``warning:`` line; Python's default format adds a source line."""
    import warnings

    default = warnings.showwarning
    if getattr(default, "momentloc_one_line", False):  # already installed (main called again in-process)
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' hook signature
        # Matched by name: importing the parsers here would pull torch into `momentloc --help`.
        if category.__name__ == "SkippedRowWarning":
            typer.echo(f"warning: {message}", err=True)
        else:
            default(message, category, filename, lineno, file, line)

    show.momentloc_one_line = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def main() -> None:  # noqa: D401
    """Entry point: user errors become one line on stderr and exit code 2."""
    from momentloc.errors import MomentlocError, one_line

    _one_line_skips()
    try:
        code = app(standalone_mode=False, prog_name="momentloc")  # also under python -m momentloc
        # Without standalone mode a typer.Exit raised inside a command comes back as its code.
        if isinstance(code, int) and not isinstance(code, bool) and code:
            sys.exit(code)
    except MomentlocError as err:
        typer.echo(f"error: {one_line(str(err))}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except Exception as err:  # command-line usage errors (click's, or typer's vendored click)
        code = _usage_exit(err)
        if code is not None:
            sys.exit(code)
        user = _user_error(err)
        if user is None:
            raise
        typer.echo(f"error: {one_line(user)}", err=True)
        sys.exit(2)


def _user_error(err: BaseException) -> Optional[str]:
    """The user's mistake behind an exception, if any: a momentloc error that a library (Lightning tearing down a
    failed run, say) raised another exception over, or a write that failed for want of space or permission."""
    from momentloc.errors import MomentlocError, write_failure

    seen = []
    link: Optional[BaseException] = err
    while link is not None and len(seen) < 16:
        seen.append(link)
        link = link.__cause__ or link.__context__
    for link in seen:
        if isinstance(link, MomentlocError):
            return str(link)
    for link in seen:
        if isinstance(link, OSError):
            failure = write_failure(link.filename or "output", link)
            if failure is not None:
                return str(failure)
        if isinstance(link, RecursionError):
            return "input nested too deeply to read (a JSON or YAML file of thousands of nested brackets?)"
    return None
