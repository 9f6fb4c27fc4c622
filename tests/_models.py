"""What the contract tests iterate: every registered model, by supervision kind, built from its CI config.

A model joins these tests by being registered: no list to add it to. Every
model ships ``<name>_synthetic_ci.yaml`` (test_registry checks it), and the
tests build it with that config's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from _helpers import CONFIGS

from momentloc.config import ExperimentConfig, load_config
from momentloc.data.dataset import GroundingDataset
from momentloc.data.features import FeatureStore
from momentloc.data.formats.activitynet import parse_activitynet
from momentloc.data.points import generate_glance
from momentloc.data.text import Vocabulary, load_glove_pickle
from momentloc.models.base import GroundingModel, InputSpec
from momentloc.models.build import build_model
from momentloc.types import Batch, Pair

CI_SUFFIX = "_synthetic_ci"
# Where experiment configs are looked up, in order (a test of a model outside the package adds its folder).
CONFIG_FOLDERS: list[Path] = [CONFIGS]


def config_path(stem: str) -> Path:
    """The experiment config ``<stem>.yaml`` from the first of ``CONFIG_FOLDERS`` that has it."""
    for folder in CONFIG_FOLDERS:
        if (folder / f"{stem}.yaml").is_file():
            return folder / f"{stem}.yaml"
    raise FileNotFoundError(f"no experiment config {stem}.yaml in {', '.join(map(str, CONFIG_FOLDERS))}")


def ci_config_name(model: str) -> str:
    """The name of the CI-size experiment config every model ships."""
    return f"{model}{CI_SUFFIX}"


def ci_config(model: str) -> ExperimentConfig:
    """The CI-size experiment config of ``model``."""
    return load_config(config_path(ci_config_name(model)))


@dataclass
class Parts:
    """The tiny synthetic benchmark's training pairs (with a generated glance each), features and vocabulary."""

    pairs: list[Pair]
    store: FeatureStore
    vocab: Vocabulary

    def dataset(self, supervision: str, cfg: Optional[ExperimentConfig] = None,
                pairs: Optional[list[Pair]] = None) -> GroundingDataset:
        """A dataset that hands ``supervision``'s labels, resampled as ``cfg`` asks."""
        data = cfg.data if cfg is not None else None
        return GroundingDataset(self.pairs if pairs is None else pairs, self.store, self.vocab, supervision,
                                num_clips=data.num_clips if data else None, max_clips=data.max_clips if data else None)

    def batch(self, supervision: str, cfg: Optional[ExperimentConfig] = None, n: int = 8,
              pairs: Optional[list[Pair]] = None) -> Batch:
        """The first ``n`` items of ``dataset(...)`` collated."""
        ds = self.dataset(supervision, cfg, pairs)
        return ds.collate([ds[i] for i in range(n)])


def tiny_parts(root: Path) -> Parts:
    """``Parts`` of the tiny synthetic benchmark written at ``root`` (16-d features, 24-d words)."""
    pairs = generate_glance(parse_activitynet(root / "train.json"), seed=0)
    return Parts(pairs, FeatureStore(root / "features.hdf5", dim=16), load_glove_pickle(root / "glove.pkl"))


def ci_model(model: str, vocab: Vocabulary, seed: int = 0) -> GroundingModel:
    """``model`` with the parameters of its CI config, for the tiny benchmark's shapes, seeded."""
    cfg = ci_config(model)
    torch.manual_seed(seed)
    return build_model(cfg, InputSpec(video_dim=16, text_dim=vocab.dim, vocab_size=len(vocab), num_clips=cfg.data.num_clips))
