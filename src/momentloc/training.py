"""The Lightning module around any grounding model, its data module, the trainer, and the train entry point."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, DistributedSampler

from momentloc.checkpoint import EMA_KEY, FORMAT, atomic_save, load_checkpoint
from momentloc.config import ExperimentConfig
from momentloc.data.dataset import GroundingDataset, VideoCentricSampler, eval_loader
from momentloc.data.sources import build_data
from momentloc.data.text import Vocabulary
from momentloc.ema import WeightAverage
from momentloc.errors import ConfigError
from momentloc.loss_watch import LossWatch
from momentloc.metrics.protocol import VAL_PREFIX, config_protocol
from momentloc.models.base import InputSpec
from momentloc.models.build import WeightedObjectives, build_model
from momentloc.optim import make_optimizer
from momentloc.restore import check_weights
from momentloc.types import Batch, Moment


def _quiet_lightning() -> None:
    """Keep Lightning's banners and advice out of our output; real warnings still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*LeafSpec.*", ".*does not have many workers.*", ".*number of training batches.*",
                    ".*GPU available but not used.*", ".*litlogger.*", ".*litmodels.*",
                    # a resumed or overwritten run reuses its folders on purpose (momentloc.runs)
                    ".*exists and is not empty.*"):
        warnings.filterwarnings("ignore", message=pattern)


_quiet_lightning()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file, fsynced and renamed into place."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Optional[Any] = None, weights_only: Optional[bool] = None) -> dict[str, Any]:
        # Resuming reads the file through the same checked, weights-only loader as evaluation.
        return load_checkpoint(path, map_location=map_location or "cpu")


class GroundingModule(L.LightningModule):
    """Trains any registered model with its plug-in objectives; validates with the dataset's protocol
    (``momentloc.metrics.protocol``: DiDeMo Rank@1, QVHighlights mAP, else R1@0.5, or the config's ``eval:``)."""

    def __init__(self, cfg: ExperimentConfig, spec: InputSpec, vocab: Vocabulary) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        self.vocab = vocab
        self.model = build_model(cfg, spec)
        self.objectives = WeightedObjectives(cfg, self.model)
        self.eval_pairs: Sequence = ()
        self.protocol = config_protocol(cfg)
        self.eval_k = self.protocol.decode_k
        self.predictions: dict[int, list[Moment]] = {}
        self.metrics: dict[str, float] = {}
        self._val_rows: list[tuple[torch.Tensor, torch.Tensor]] = []
        decay = cfg.train.ema_decay
        self.ema: Optional[WeightAverage] = WeightAverage(decay) if decay is not None else None
        self._ema_in_use = False
        self.loss_watch = LossWatch()

    # -- training ---------------------------------------------------------
    def compute_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The model's losses plus every weighted objective; ``total`` is optimised."""
        out = self.model(batch)
        losses = dict(self.model.loss(out, batch))
        losses.update(self.objectives(out, batch, losses["total"]))
        return losses

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        losses = self.compute_losses(batch)
        total = losses["total"]
        self.loss_watch.push(total, self.global_step, self.current_epoch)  # no device sync on a GPU
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=batch.size, prog_bar=False)
        return total

    def on_train_end(self) -> None:
        self.loss_watch.check(wait=True)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        if self.ema is not None and not self.ema.values:
            self.ema.reset(self)  # the weights before the first step (or those a resume restored)
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self.ema is not None:
            self.ema.update(self)

    def configure_optimizers(self) -> Any:
        steps = 1
        if self.cfg.optim.schedule_interval == "step" and self._trainer is not None:
            steps = max(1, int(self.trainer.estimated_stepping_batches) // max(1, self.cfg.train.epochs))
        return make_optimizer(self.cfg.optim, self.named_parameters(), self.cfg.train.epochs, self.protocol.monitor_key,
                              steps_per_epoch=steps)

    # -- evaluation -------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.loss_watch.check(wait=True)  # every training loss read before validation scores these weights
        self._val_rows = []
        self._use_average(True)

    def _use_average(self, on: bool) -> None:
        """Validate with the weight average: swapped in for validation, the raw weights back after it."""
        if self.ema is not None and self.ema.values and on != self._ema_in_use:
            self.ema.swap(self)
            self._ema_in_use = on

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        out = self.model(batch)
        moments = self.model.decode(out, batch, self.eval_k)
        rows = torch.full((batch.size, self.eval_k, 3), float("nan"))
        for b, ms in enumerate(moments):
            for j, m in enumerate(ms[: self.eval_k]):
                rows[b, j] = torch.tensor([m.start, m.end, m.score])
        self._val_rows.append((batch.index.cpu(), rows))

    def on_validation_epoch_end(self) -> None:
        self._use_average(False)  # before ModelCheckpoint saves (on_validation_end): state_dict holds the raw weights
        if not self._val_rows:
            return
        index = torch.cat([r[0] for r in self._val_rows]).to(self.device)
        rows = torch.cat([r[1] for r in self._val_rows]).to(self.device)
        if self.trainer.world_size > 1:
            index = self.all_gather(index).reshape(-1)
            rows = self.all_gather(rows).reshape(-1, self.eval_k, 3)
        preds: dict[int, list[Moment]] = {}
        for i, row in zip(index.tolist(), rows.cpu()):
            if i not in preds:  # the distributed sampler pads with repeats
                preds[i] = [Moment(*map(float, r)) for r in row if not torch.isnan(r[0])]
        self.predictions = preds
        pairs = [self.eval_pairs[i] for i in sorted(preds)]
        scored = [p for p in pairs if p.windows]
        if scored:
            scored_preds = [preds[i] for i in sorted(preds) if self.eval_pairs[i].windows]
            metrics = self.protocol.score(scored, scored_preds, breakdowns=False)
            self.metrics = {k: float(v) for k, v in metrics.items()}
            # Every rank holds the gathered metrics already: no further sync.
            key = self.protocol.monitor_key
            shown = {f"{VAL_PREFIX}{k}": v for k, v in self.metrics.items() if k != "n"}
            self.log_dict({k: v for k, v in shown.items() if k != key}, prog_bar=False)
            self.log(key, shown[key], prog_bar=True)

    # -- checkpoint contents ---------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.loss_watch.check(wait=True)  # a non-finite loss stops training before its weights are saved
        checkpoint["momentloc"] = {
            "format": FORMAT,
            "config": self.cfg.model_dump(mode="json"),
            "spec": dict(vars(self.spec)),
            "vocab": self.vocab.to_payload(),
            "model": self.cfg.model.name,
            "supervision": self.model.supervision,
            "feature_spec": _store_feature_spec(self.cfg),
        }
        if self.ema is not None and self.ema.values:
            checkpoint[EMA_KEY] = dict(self.ema.values)
        # Dropout and other random layers continue exactly after a resume.
        checkpoint["rng_cpu"] = torch.get_rng_state()
        if torch.cuda.is_available():
            checkpoint["rng_cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.ema is not None and isinstance(checkpoint.get(EMA_KEY), dict):
            self.ema.load(checkpoint[EMA_KEY], self)
        if "rng_cpu" in checkpoint:
            torch.set_rng_state(checkpoint["rng_cpu"])
        if "rng_cuda" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["rng_cuda"])


def _store_feature_spec(cfg: ExperimentConfig) -> Optional[dict]:
    """The feature spec (encoder, fps, dim) of the store trained on, when the store records one."""
    from momentloc.data.sources import feature_path

    try:
        from momentloc.video import read_store_spec
    except ImportError:  # the [video] extra is not installed
        return None
    spec = read_store_spec(feature_path(cfg.data))
    return spec.to_dict() if spec is not None else None


class GroundingData(L.LightningDataModule):
    """Loaders built after the process group exists, so each rank takes its own shard."""

    def __init__(self, train: Optional[GroundingDataset], val: GroundingDataset, cfg: ExperimentConfig) -> None:
        super().__init__()
        self.train_set, self.val_set, self.cfg = train, val, cfg

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        t, rank, world = self.cfg.train, *self._rank()
        kw: dict[str, Any] = dict(collate_fn=self.train_set.collate, num_workers=t.num_workers, persistent_workers=t.num_workers > 0)
        q = self.cfg.data.queries_per_video
        if q > 1:
            sampler = VideoCentricSampler(self.train_set.pairs, t.batch_size, q, seed=t.seed, rank=rank, world=world)
            return DataLoader(self.train_set, batch_sampler=sampler, **kw)
        dist = DistributedSampler(self.train_set, num_replicas=world, rank=rank, shuffle=True, seed=t.seed, drop_last=False)
        return DataLoader(self.train_set, batch_size=t.batch_size, sampler=dist, **kw)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.val_set, self.cfg.train.eval_batch_size, *self._rank(), self.cfg.train.num_workers)


class _EpochSeeder(L.Callback):
    """Reseeds samplers each epoch (DistributedSampler and the video-centric one)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        for s in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
            if hasattr(s, "set_epoch"):
                s.set_epoch(trainer.current_epoch)


@dataclass
class TrainResult:
    """Where training left its checkpoint, its validation metrics, and how long it took."""

    checkpoint: Path
    best_checkpoint: Optional[Path]
    metrics: dict[str, float]
    seconds: float
    run_dir: Path


class _ProgressBar(TQDMProgressBar):
    """Shows the latest training loss that has reached the host (logging it with ``prog_bar`` would read it
    from the device on every refresh: a sync per step). Bars go to stderr, so piped results stay clean;
    ``label`` names the validation bar (``eval`` sets it to the split)."""

    label: Optional[str] = None

    @property
    def validation_description(self) -> str:
        return self.label or super().validation_description

    def _on_stderr(self, make: Callable[[], Any]) -> Any:
        import sys

        saved, sys.stdout = sys.stdout, sys.stderr  # Lightning's bars take sys.stdout when they are made
        try:
            return make()
        finally:
            sys.stdout = saved

    def init_sanity_tqdm(self) -> Any:
        return self._on_stderr(super().init_sanity_tqdm)

    def init_train_tqdm(self) -> Any:
        return self._on_stderr(super().init_train_tqdm)

    def init_validation_tqdm(self) -> Any:
        return self._on_stderr(super().init_validation_tqdm)

    def init_predict_tqdm(self) -> Any:
        return self._on_stderr(super().init_predict_tqdm)

    def init_test_tqdm(self) -> Any:
        return self._on_stderr(super().init_test_tqdm)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        last = getattr(getattr(pl_module, "loss_watch", None), "last", None)
        if last is not None:
            items["loss"] = f"{last:.4g}"
        return items


def _trainer(cfg: ExperimentConfig, run_dir: Path, callbacks: list, devices: Any = None, logger: bool = True) -> L.Trainer:
    import sys

    t = cfg.train
    torch.set_float32_matmul_precision(t.matmul_precision)
    progress = t.progress and sys.stderr.isatty()  # no bar redraws into a log file or a pipe
    if progress:
        callbacks = [*callbacks, _ProgressBar()]
    loggers: Any = False
    if logger:
        loggers = [CSVLogger(run_dir, name="logs", version=""), TensorBoardLogger(run_dir, name="tb", version="")]
    return L.Trainer(
        max_epochs=t.epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=devices if devices is not None else t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,  # type: ignore[arg-type]
        default_root_dir=str(run_dir),
        logger=loggers,
        callbacks=callbacks,
        log_every_n_steps=t.log_every_n_steps,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        limit_train_batches=t.limit_train_batches,
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic="warn" if t.deterministic else False,
        use_distributed_sampler=False,
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
        gradient_clip_val=cfg.optim.grad_clip,
    )


def input_spec(cfg: ExperimentConfig, vocab: Vocabulary) -> InputSpec:
    """The model's input shapes from the data config and vocabulary."""
    return InputSpec(video_dim=cfg.data.feature_dim, text_dim=vocab.dim, vocab_size=len(vocab), num_clips=cfg.data.num_clips)


def train(cfg: ExperimentConfig, resume: Optional[str] = None, run_dir: Optional[Path] = None,
          callbacks: Sequence[L.Callback] = (), overwrite: bool = True) -> TrainResult:
    """Train from a config; select the checkpoint on validation; return where it is.

    ``callbacks`` are extra Lightning callbacks (e.g. timing or early stopping) run with the trainer's own.
    ``overwrite=False`` refuses a fresh run into a run folder that holds checkpoints (the command line's default)."""
    from momentloc import runs

    run_dir = Path(run_dir or Path(cfg.train.out_dir) / cfg.name)
    resume_path = runs.prepare_run_folder(run_dir, resume, overwrite)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    from momentloc.registry import get_model_class

    supervision = get_model_class(cfg.model.name).supervision
    data = build_data(cfg.data, supervision, seed=cfg.train.seed)
    try:
        module = GroundingModule(cfg, input_spec(cfg, data.vocab), data.vocab)
    except (RuntimeError, ValueError) as err:  # e.g. a width of 0 that torch cannot build a layer of
        raise ConfigError(f"model {cfg.model.name!r} cannot be built from model.params "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    module.eval_pairs = data.val.pairs
    metrics_header: list[str] = []
    metrics_rows: list[dict[str, str]] = []
    if resume_path is not None:
        ckpt = load_checkpoint(resume_path)
        check_weights(resume_path, cfg.model.name, module.state_dict(), ckpt.get("state_dict") or {})
        metrics_header, metrics_rows = runs.metrics_before(run_dir, runs.checkpoint_epoch(ckpt))
        del ckpt
    ckpt_dir = run_dir / "checkpoints"
    ckpt_cb = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=module.protocol.monitor_key, mode="max", save_top_k=1, enable_version_counter=False,
    )
    # A second callback writes last.ckpt every epoch: Lightning's own save_last
    # only fires when the monitored metric improved, which breaks resuming.
    last_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False)
    trainer = _trainer(cfg, run_dir, [ckpt_cb, last_cb, _EpochSeeder(), *callbacks])
    runs.restore_metrics(trainer.loggers, metrics_header, metrics_rows)
    start = time.perf_counter()
    resume = str(resume_path) if resume_path is not None else None
    trainer.fit(module, datamodule=GroundingData(data.train, data.val, cfg), ckpt_path=resume)
    seconds = time.perf_counter() - start
    best = Path(ckpt_cb.best_model_path) if ckpt_cb.best_model_path else None
    return TrainResult(ckpt_dir / "last.ckpt", best, dict(module.metrics), seconds, run_dir)


# Names that moved to modules of their own, still reachable here for existing scripts (make_optimizer,
# WeightAverage and eval_loader are imported above, so they need no entry).
_MOVED = {
    "module_from_checkpoint": "momentloc.restore", "evaluate_checkpoint": "momentloc.eval_run",
    "schedule_factor": "momentloc.optim", "param_groups": "momentloc.optim", "decay_exempt": "momentloc.optim",
    "lr_factor": "momentloc.optim",
}


def __getattr__(name: str) -> Any:
    """A moved name, taken from its new module with a warning that names it."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    warnings.warn(f"momentloc.training.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(_MOVED[name]), name)
