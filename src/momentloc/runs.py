"""Run folders: a new run never silently replaces another's checkpoints, a resumed run keeps its whole metrics log."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

from momentloc.errors import CheckpointError, ConfigError, write_failure
from momentloc.files import write_text_atomic

METRICS = Path("logs") / "metrics.csv"


def prepare_run_folder(run_dir: Path, resume: Optional[str], overwrite: bool) -> Optional[Path]:
    """Create ``run_dir`` and say which checkpoint to resume from (None: a fresh run).

    A fresh run into a folder that already holds checkpoints is refused unless ``overwrite`` (then the old
    checkpoints and metrics log are removed first, so nothing of the old run is mixed into the new one)."""
    ckpt_dir = run_dir / "checkpoints"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        failure = write_failure(run_dir, err)
        why = failure and str(failure).rsplit(": ", 1)[-1] or err.strerror or type(err).__name__
        raise ConfigError(f"train.out_dir: cannot create the run folder {run_dir} ({why})") from None
    if resume is not None:
        path = ckpt_dir / "last.ckpt" if resume == "last" else Path(resume)
        if not path.is_file():
            what = f"no last.ckpt in {ckpt_dir}" if resume == "last" else f"{path}: checkpoint not found"
            raise CheckpointError(f"--resume: {what}; nothing to resume")
        return path
    old = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    if old and not overwrite:
        raise ConfigError(f"{run_dir}: holds the checkpoints of an earlier run ({', '.join(p.name for p in old)}); "
                          "continue it with --resume last, replace it with --overwrite, or give the run another "
                          "name (--set name=...)")
    if old:
        for path in old:
            path.unlink()
        (run_dir / METRICS).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
    return None


def metrics_before(run_dir: Path, epoch: int) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of the run's metrics log up to and including ``epoch`` (rows of a killed later epoch are
    dropped: that epoch is trained again)."""
    path = run_dir / METRICS
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [row for row in reader if _epoch(row) is None or _epoch(row) <= epoch]  # type: ignore[operator]
        return list(reader.fieldnames or []), rows


def _epoch(row: dict[str, str]) -> Optional[float]:
    try:
        return float(row.get("epoch") or "nan") if row.get("epoch") else None
    except ValueError:
        return None


def restore_metrics(loggers: Sequence[Any], header: list[str], rows: list[dict[str, str]]) -> None:
    """Put the earlier epochs back into the CSV log a resumed run writes (Lightning's CSV logger starts it afresh)."""
    if not header:
        return
    from lightning.pytorch.loggers import CSVLogger

    for logger in loggers:
        if isinstance(logger, CSVLogger):
            writer = logger.experiment  # created now: it removes the old file, which is written back below
            text = io.StringIO()
            out = csv.DictWriter(text, fieldnames=header, lineterminator="\n")
            out.writeheader()
            out.writerows(rows)
            write_text_atomic(writer.metrics_file_path, text.getvalue())
            writer.metrics_keys = sorted(set(writer.metrics_keys) | set(header))


def checkpoint_epoch(ckpt: dict[str, Any]) -> int:
    """The last finished epoch a Lightning checkpoint records (-1 when it records none)."""
    epoch = ckpt.get("epoch")
    return int(epoch) if isinstance(epoch, int) else -1


def require_generated(data: Any) -> None:
    """Evaluation never generates data: a missing synthetic benchmark is named with the command that makes it."""
    from momentloc.data.sources import annotation_root, synthetic_info

    root = annotation_root(data)
    synthetic = synthetic_info(data)
    if synthetic is not None and not (root / "meta.json").is_file():
        size = synthetic.facts["size"]
        raise ConfigError(f"data.annotations: no synthetic benchmark at {root} (evaluation does not generate one); "
                          f"make it with 'momentloc data synth --size {size} --out {root}' or point "
                          "--set data.annotations=... at it")
