"""Evaluate a checkpoint on a split: the trainer's validation loop over the split's pairs, then the metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import lightning as L
from torch.utils.data import DataLoader

from momentloc.checkpoint import check_finite_weights
from momentloc.config import ExperimentConfig
from momentloc.data.dataset import GroundingDataset, eval_loader
from momentloc.data.sources import make_dataset, split_pairs
from momentloc.errors import CheckpointError
from momentloc.restore import module_from_checkpoint
from momentloc.training import GroundingModule, _ProgressBar, _trainer
from momentloc.types import Moment


def evaluate_checkpoint(
    path: Path,
    split: str = "test",
    overrides: Optional[list[str]] = None,
    devices: Any = None,
    batch_size: Optional[int] = None,
    breakdowns: bool = True,
) -> tuple[dict[str, float], dict[int, list[Moment]], list]:
    """Metrics (the dataset's protocol, with the config's ``eval:`` block), predictions by pair index, and the pairs
    of ``split`` for a checkpoint."""
    from momentloc.runs import require_generated

    module = module_from_checkpoint(path, overrides, build=GroundingModule)
    check_finite_weights(path, module.state_dict())
    cfg = module.cfg
    require_generated(cfg.data)
    _check_store_features(path, cfg)
    pairs = split_pairs(cfg.data, split, seed=cfg.train.seed)
    ds = make_dataset(cfg.data, pairs, module.vocab, "weak")
    module.eval_pairs = pairs
    trainer = _trainer(cfg, Path(cfg.train.out_dir) / cfg.name, [], devices=devices, logger=False)
    for callback in trainer.callbacks:
        if isinstance(callback, _ProgressBar):
            callback.label = split
    loader_bs = batch_size or cfg.train.eval_batch_size
    trainer.validate(module, datamodule=_EvalData(ds, loader_bs, cfg.train.num_workers), verbose=False)
    preds = module.predictions
    metrics = dict(module.metrics)
    if breakdowns and preds and all(p.windows for p in pairs):
        metrics = module.protocol.score(pairs, [preds[i] for i in range(len(pairs))], breakdowns=True)
    return metrics, preds, pairs


def _check_store_features(path: Path, cfg: ExperimentConfig) -> None:
    """Refuse a feature store whose recorded spec differs from the one the checkpoint was trained on."""
    from momentloc.data.sources import feature_path

    try:
        from momentloc.video import checkpoint_feature_spec, read_store_spec
    except ImportError:  # the [video] extra is not installed
        return
    trained = checkpoint_feature_spec(path)
    store = feature_path(cfg.data)
    found = read_store_spec(store) if store.exists() else None
    if trained is not None and found is not None and not trained.same_features(found):
        raise CheckpointError(f"{path}: trained on features of {trained.describe()}, "
                              f"but the store {store} holds {found.describe()}")


class _EvalData(L.LightningDataModule):
    """One split's loader, built after the process group exists so that each rank takes its own shard."""

    def __init__(self, ds: GroundingDataset, batch_size: int, workers: int) -> None:
        super().__init__()
        self.ds, self.bs, self.workers = ds, batch_size, workers

    def val_dataloader(self) -> DataLoader:
        t = self.trainer
        return eval_loader(self.ds, self.bs, t.global_rank, t.world_size, self.workers)
