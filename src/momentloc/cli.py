"""`momentloc` command line: thin wrappers over the library (heavy imports stay inside commands)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Find the moment in a video that a sentence describes.")
data_app = typer.Typer(no_args_is_help=True, help="Annotations, features, synthetic data and point labels.")
app.add_typer(data_app, name="data")

SetOpt = typer.Option(None, "--set", help="Override a config key: a.b.c=value (repeatable).")


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


@app.command("list")
def list_cmd() -> None:
    """List registered models, objectives, datasets and shipped configs."""
    from momentloc.data.formats import DATASETS
    from momentloc.registry import get_model_class, model_names, objective_names

    con = _console()
    con.print("[bold]models[/bold]")
    for name in model_names():
        cls = get_model_class(name)
        con.print(f"  {name:<12} {cls.supervision:<6} {(cls.__doc__ or '').strip().splitlines()[0]}")
    con.print("[bold]objectives[/bold]")
    for name in objective_names():
        con.print(f"  {name}")
    con.print("[bold]datasets[/bold]")
    for name, info in DATASETS.items():
        con.print(f"  {name:<14} splits: {', '.join(info.splits)}")
    con.print("  synthetic_ci / synthetic_bench / synthetic_long (generated: momentloc data synth)")
    root = Path(__file__).resolve().parents[2] / "configs" / "experiment"
    if root.exists():
        con.print("[bold]experiment configs[/bold]")
        for p in sorted(root.glob("*.yaml")):
            con.print(f"  {p.relative_to(root.parents[1])}")


@app.command()
def train(
    config: Path = typer.Argument(..., help="Experiment YAML."),
    set_: Optional[List[str]] = SetOpt,
    resume: Optional[str] = typer.Option(None, help="Checkpoint to resume from, or 'last' for the run's last.ckpt."),
) -> None:
    """Train a model from a config; the checkpoint is selected on the validation split."""
    from momentloc.config import load_config
    from momentloc.training import train as run

    cfg = load_config(config, set_ or [])
    result = run(cfg, resume=resume)
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
    from momentloc.evaluate import write_predictions_jsonl
    from momentloc.metrics import format_table
    from momentloc.training import evaluate_checkpoint

    metrics, preds, pairs = evaluate_checkpoint(checkpoint, split, set_ or [], devices=devices)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return
    typer.echo(format_table({k: v for k, v in metrics.items()}))
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
    dataset: str = typer.Option(..., help="charades_sta, tacos, activitynet, didemo, qvhighlights"),
    split: str = typer.Option(..., help="The dataset's split name, e.g. test, val_2."),
    predictions: Path = typer.Option(..., help="Predictions file (QVH jsonl, CSV/jsonl rows, DiDeMo rankings)."),
    missing: str = typer.Option("error", help="'error' or 'miss': score missing queries as misses."),
    root: Optional[Path] = typer.Option(None, help="Annotation folder (default $MOMENTLOC_DATA/<dataset>)."),
    out: Optional[Path] = typer.Option(None, help="Write metrics JSON here."),
) -> None:
    """Score any system's predictions file against the annotations (no model, no features)."""
    from momentloc.data.formats import load_pairs
    from momentloc.evaluate import evaluate_predictions, load_predictions
    from momentloc.metrics import format_table

    pairs = load_pairs(dataset, split, root=root)
    metrics = evaluate_predictions(pairs, load_predictions(predictions), dataset, missing=missing)  # type: ignore[arg-type]
    typer.echo(format_table(metrics))
    if metrics.get("missing_scored_as_miss"):
        typer.echo(f"note: {metrics['missing_scored_as_miss']} missing queries scored as misses")
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
    from momentloc.data.synthetic import ensure_synthetic

    root = ensure_synthetic(out or Path("artifacts/synthetic") / size, size=size, seed=seed)
    typer.echo(f"synthetic benchmark ({size}) at {root}")


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


def _write_json(path: Path, obj: object) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=1, default=float)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Where runs and checkpoints go."),
    epochs: Optional[int] = typer.Option(None, help="Override the training epochs."),
    model: str = typer.Option("span", help="Which *_synthetic_ci.yaml model to train."),
) -> None:
    """The main job: synthetic benchmark, train, evaluate, localize, and the shipped annotations."""
    from momentloc.demo import run_demo

    run_demo(out, epochs, model)


def main() -> None:  # noqa: D401
    """Entry point: user errors become one line on stderr and exit code 2."""
    from momentloc.errors import MomentlocError

    try:
        app(standalone_mode=False)
    except MomentlocError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as err:  # click usage errors
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        raise
