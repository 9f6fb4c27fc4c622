"""From a data config to pairs, feature store, vocabulary and datasets for each split."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from momentloc.config import DataConfig
from momentloc.data.dataset import GroundingDataset
from momentloc.data.formats import DatasetInfo, find_dataset, generated_dataset, load_pairs
from momentloc.data.features import FeatureStore
from momentloc.data.points import generate_glance
from momentloc.data.text import Vocabulary, build_vocabulary
from momentloc.errors import ConfigError
from momentloc.paths import data_root
from momentloc.types import Pair


def synthetic_info(cfg: DataConfig) -> Optional[DatasetInfo]:
    """The table entry of a generated synthetic benchmark (its own features and vocabulary), else None."""
    return generated_dataset(cfg.dataset, "synthetic")


def annotation_root(cfg: DataConfig) -> Path:
    """Folder of the annotation files: the config's, else ``$MOMENTLOC_DATA/<the dataset's folder>``."""
    if cfg.annotations:
        return Path(cfg.annotations).expanduser()
    info = find_dataset(cfg.dataset)
    return data_root() / (info.folder if info is not None else cfg.dataset)


def simulation_folder(cfg: DataConfig) -> Path:
    """Where the simulated store of a config lives: beside ``features`` if given, else named by its knobs."""
    from momentloc.data.simulate import spec_from, spec_tag

    if cfg.features:
        return Path(cfg.features).expanduser().parent
    return Path("artifacts/charades_sim") / spec_tag(spec_from(cfg.simulate or {}))


def ensure_generated(cfg: DataConfig) -> None:
    """Generate the synthetic benchmark (or simulate the features) the config points at if not there yet."""
    if cfg.simulate is not None:
        from momentloc.data.simulate import ensure_simulated, spec_from

        ensure_simulated(annotation_root(cfg), simulation_folder(cfg), spec_from(cfg.simulate), progress=sys.stderr.isatty())
        return
    synthetic = synthetic_info(cfg)
    if synthetic is not None and not (annotation_root(cfg) / "meta.json").exists():
        from momentloc.data.synthetic import ensure_synthetic

        ensure_synthetic(annotation_root(cfg), size=synthetic.facts["size"])


def _raw_pairs(cfg: DataConfig, split: str) -> list[Pair]:
    root = annotation_root(cfg)
    # Shipped glance labels are training labels; evaluation splits need none.
    glance = cfg.glance == "shipped" and split == cfg.train_split
    pairs = load_pairs(cfg.dataset, split, root=root, glance=glance, skip_bad=cfg.skip_bad_rows)
    if cfg.simulate is not None and cfg.simulate.get("max_videos") is not None:
        from momentloc.data.simulate import spec_from, videos_to_render

        keep = set(videos_to_render(root, spec_from(cfg.simulate)))
        pairs = [p for p in pairs if p.video_id in keep]
    return pairs


def split_pairs(cfg: DataConfig, split: str, seed: int = 0) -> list[Pair]:
    """Pairs of a split; ``"val"`` is carved out of train (by video, seeded) when there is no val split."""
    if cfg.val_split is None and split in ("train", "val"):
        train, val = _carve(_raw_pairs(cfg, cfg.train_split), cfg.val_fraction, seed)
        pairs = train if split == "train" else val
    else:
        name = {"train": cfg.train_split, "val": cfg.val_split, "test": cfg.test_split}.get(split, split)
        pairs = _raw_pairs(cfg, name)
    # Points are training labels; evaluation splits are scored on windows.
    return generate_glance(pairs, seed) if cfg.glance == "generated" and split == "train" else pairs


def _carve(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    videos = sorted({p.video_id for p in pairs})
    random.Random(seed).shuffle(videos)
    held = set(videos[: max(1, int(round(fraction * len(videos))))])
    return [p for p in pairs if p.video_id not in held], [p for p in pairs if p.video_id in held]


def text_path(cfg: DataConfig) -> Optional[str]:
    """The GloVe file, defaulting to the synthetic benchmark's own vocabulary."""
    if cfg.text.path:
        return cfg.text.path
    synthetic = synthetic_info(cfg)
    if synthetic is not None:
        return str(annotation_root(cfg) / synthetic.facts["vocabulary"])
    return None


def feature_path(cfg: DataConfig) -> Path:
    """The feature store path; the synthetic benchmark has its own."""
    if cfg.features:
        return Path(cfg.features).expanduser()
    if cfg.simulate is not None:
        from momentloc.data.simulate import STORE_NAME

        return simulation_folder(cfg) / STORE_NAME
    synthetic = synthetic_info(cfg)
    if synthetic is not None:
        return annotation_root(cfg) / synthetic.facts["features"]
    raise ConfigError(
        f"data.features: no feature store given for {cfg.dataset}; pass --set data.features=PATH "
        "(a folder of .npy, a .npz or an .hdf5 keyed by video id)"
    )


@dataclass
class DataBundle:
    """Everything the training loop needs from the data side."""

    train: GroundingDataset
    val: GroundingDataset
    vocab: Vocabulary


def build_vocab(cfg: DataConfig, sentences: list[str]) -> Vocabulary:
    """The vocabulary the config asks for."""
    t = cfg.text
    return build_vocabulary(t.kind, text_path(cfg), sentences, t.dim, t.oov, t.lowercase)


def make_dataset(cfg: DataConfig, pairs: list[Pair], vocab: Vocabulary, supervision: str,
                 training: bool = False) -> GroundingDataset:
    """A dataset over ``pairs`` with the config's store and resampling (and its random crops when ``training``)."""
    store = FeatureStore(feature_path(cfg), dim=cfg.feature_dim)
    return GroundingDataset(
        pairs, store, vocab, supervision=supervision, num_clips=cfg.num_clips, max_clips=cfg.max_clips,
        max_words=cfg.text.max_words, normalize=cfg.normalize_features,
        crop=cfg.crop_ratio if training else None, crop_keep=cfg.crop_keep,
    )


def build_data(cfg: DataConfig, supervision: str, seed: int = 0) -> DataBundle:
    """Train and val datasets plus the vocabulary (built from train+val sentences)."""
    ensure_generated(cfg)
    train_pairs = split_pairs(cfg, "train", seed)
    val_pairs = split_pairs(cfg, "val", seed)
    vocab = build_vocab(cfg, [p.query for p in train_pairs + val_pairs])
    train = make_dataset(cfg, train_pairs, vocab, supervision, training=True)
    # Validation is scored against windows, so it needs only the store; the
    # model still sees no label it may not (decode gets no labels).
    val = make_dataset(cfg, val_pairs, vocab, "weak")
    return DataBundle(train, val, vocab)
