"""Annotation parsers, one per benchmark file format, and the one table of datasets.

``DATASETS`` describes every dataset the package knows, shipped, generated
(the compositional synthetic sets) or simulated (Charades-STA with simulated
features): its folder, file format (parser), names it also answers to, splits,
point-label files and evaluation protocol (``momentloc.metrics.protocol``). The
data layer, training, ``momentloc eval`` and ``momentloc evaluate`` all read it.

Every parser returns ``list[Pair]`` with times in seconds and validates every
row: a bad row raises one ``DataError`` naming the file, the line or key, and
what was expected. With ``skip_bad=True`` a bad row is skipped instead, and
each skip is both recorded in the optional :class:`ParseReport` (``.skipped``)
and emitted as a :class:`SkippedRowWarning`, so no skip is silent.

Window ends a little past the video duration (a known artefact of several
benchmarks) are clipped to it; each format module documents its tolerance and
what was measured on the shipped files. Known-bad rows of the shipped files
are repaired from a documented list (``ERRATA`` in charades.py and
activitynet.py) and listed in ``ParseReport.repaired``. Problems of a whole
file (missing, unreadable, not valid JSON, a non-UTF-8 byte in a JSON document)
always raise.

Typical use::

    report = ParseReport()
    pairs = load_pairs("charades_sta", "train", report=report)
    pairs = load_pairs("tacos", "val", glance=True)      # ViGA point labels in Pair.point
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional

from momentloc.data.formats._common import ParseReport, PathLike, SkippedRowWarning, read_bytes, read_text
from momentloc.data.formats import activitynet, charades, didemo, qvhighlights, tacos
from momentloc.data.formats.activitynet import parse_activitynet
from momentloc.data.formats.cfmr_glance import parse_cfmr_glance
from momentloc.data.formats.charades import parse_charades
from momentloc.data.formats.didemo import parse_didemo
from momentloc.data.formats.qvhighlights import parse_qvhighlights
from momentloc.data.formats.tacos import parse_tacos
from momentloc.errors import ConfigError, DataError
from momentloc.metrics.protocol import DIDEMO, MOMENTS, QVHIGHLIGHTS, Protocol
from momentloc.paths import data_root
from momentloc.types import Pair

__all__ = [
    "DATASETS",
    "FORMATS",
    "DatasetInfo",
    "ParseReport",
    "SkippedRowWarning",
    "dataset_info",
    "find_dataset",
    "guess_format",
    "load_annotation_file",
    "load_pairs",
    "read_text",
    "split_path",
]

FORMATS: dict[str, Callable[..., list[Pair]]] = {
    "charades": parse_charades,
    "tacos": parse_tacos,
    "activitynet": parse_activitynet,
    "didemo": parse_didemo,
    "qvhighlights": parse_qvhighlights,
    "cfmr_glance": parse_cfmr_glance,
}


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset: its folder, file format, other names, files per split, point labels, protocol and facts."""

    name: str
    folder: str
    fmt: str
    splits: Mapping[str, str]
    protocol: Protocol = MOMENTS
    aliases: tuple[str, ...] = ()
    # Made here rather than shipped: "synthetic" (momentloc data synth, its own features and vocabulary) or
    # "simulate" (features simulated over the real annotations: momentloc data simulate).
    generator: Optional[Literal["synthetic", "simulate"]] = None
    summary: str = ""
    # Point labels in the dataset's own format (ViGA release), per split.
    glance: Mapping[str, str] = field(default_factory=dict)
    # The same points from the CFMR release (list format), per split.
    cfmr_glance: Mapping[str, str] = field(default_factory=dict)
    # Where a split's point labels would be, had they shipped (named in errors).
    glance_pattern: Optional[str] = None
    facts: Mapping[str, Any] = field(default_factory=dict)


DATASETS: dict[str, DatasetInfo] = {
    "charades_sta": DatasetInfo(
        name="charades_sta",
        folder="charades_sta",
        fmt="charades",
        aliases=("charades", "charades-sta"),
        splits={"train": "charades_sta_train.txt", "test": "charades_sta_test.txt"},
        glance={"train": "glance/charades_sta_train.txt", "test": "glance/charades_sta_test.txt"},
        cfmr_glance={"train": "glance/glance_train_charades.json", "test": "glance/glance_test_charades.json"},
        glance_pattern="glance/charades_sta_{split}.txt",
        facts={
            "time_unit": "s",
            "durations": "Charades_v1_{train,test}.csv, column length",
            "overshoot_tol_s": charades.OVERSHOOT_TOL_S,
        },
    ),
    "tacos": DatasetInfo(
        name="tacos",
        folder="tacos",
        fmt="tacos",
        splits={"train": "train.json", "val": "val.json", "test": "test.json"},
        glance={s: f"glance/{s}.json" for s in ("train", "val", "test")},
        cfmr_glance={s: f"glance/glance_{s}_tacos.json" for s in ("train", "val", "test")},
        glance_pattern="glance/{split}.json",
        facts={"time_unit": "frames (seconds = frame / fps)", "overshoot_tol_s": tacos.OVERSHOOT_TOL_S},
    ),
    "activitynet": DatasetInfo(
        name="activitynet",
        folder="activitynet",
        fmt="activitynet",
        aliases=("anet", "activitynet_captions"),
        splits={"train": "train.json", "val_1": "val_1.json", "val_2": "val_2.json"},
        glance={"val_1": "glance/val_1.json", "val_2": "glance/val_2.json"},
        cfmr_glance={"val_2": "glance/glance_test_activitynet.json"},
        glance_pattern="glance/{split}.json",
        facts={"time_unit": "s", "overshoot_tol_s": activitynet.OVERSHOOT_TOL_S, "test_split": "val_1 (commonly)"},
    ),
    "didemo": DatasetInfo(
        name="didemo",
        folder="didemo",
        fmt="didemo",
        protocol=DIDEMO,
        splits={"val": "val_data.json", "test": "test_data.json"},
        facts={
            "time_unit": "5-s chunks",
            "chunk_s": didemo.CHUNK_S,
            "max_segments": didemo.MAX_SEGMENTS,
            "max_duration_s": didemo.CHUNK_S * didemo.MAX_SEGMENTS,
            "windows": "consensus of the annotators; all of them in Pair.annotator_windows",
        },
    ),
    "qvhighlights": DatasetInfo(
        name="qvhighlights",
        folder="qvhighlights",
        fmt="qvhighlights",
        protocol=QVHIGHLIGHTS,
        aliases=("qvh",),
        splits={s: f"highlight_{s}_release.jsonl" for s in ("train", "val", "test")},
        facts={
            "time_unit": "s",
            "clip_s": qvhighlights.CLIP_S,
            "unlabelled_splits": ("test",),
            "overshoot_tol_s": qvhighlights.OVERSHOOT_TOL_S,
        },
    ),
    "charades_sim": DatasetInfo(
        name="charades_sim",
        folder="charades_sta",
        fmt="charades",
        splits={"train": "charades_sta_train.txt", "test": "charades_sta_test.txt"},
        glance={"train": "glance/charades_sta_train.txt", "test": "glance/charades_sta_test.txt"},
        glance_pattern="glance/charades_sta_{split}.txt",
        generator="simulate",
        summary="Charades-STA with simulated features (momentloc data simulate charades; configs *_charades_sim)",
        facts={"time_unit": "s", "annotations": "charades_sta", "features": "simulated from Charades_v1 timelines"},
    ),
    **{
        f"synthetic_{size}": DatasetInfo(
            name=f"synthetic_{size}",
            folder=f"synthetic_{size}",
            fmt="activitynet",
            splits={s: f"{s}.json" for s in ("train", "val", "test")},
            aliases=("synthetic",) if size == "ci" else (),
            generator="synthetic",
            summary=f"compositional synthetic benchmark, {size} size (momentloc data synth --size {size})",
            facts={"time_unit": "s", "size": size, "features": "features.hdf5", "vocabulary": "glove.pkl"},
        )
        for size in ("ci", "bench", "long")
    },
}


def _key(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


_NAMES: dict[str, str] = {_key(a): info.name for info in DATASETS.values() for a in (info.name, *info.aliases)}


def find_dataset(dataset: str) -> Optional[DatasetInfo]:
    """The DATASETS entry of a name or alias (any case, ``-`` or ``_``), or None."""
    name = _NAMES.get(_key(dataset))
    return DATASETS[name] if name is not None else None


def generated_dataset(dataset: str, generator: str) -> Optional[DatasetInfo]:
    """The DATASETS entry of ``dataset`` when ``generator`` makes it (``synthetic``, ``simulate``), else None."""
    info = find_dataset(dataset)
    return info if info is not None and info.generator == generator else None


def dataset_info(dataset: str) -> DatasetInfo:
    """The DATASETS entry of a name or alias, or a ConfigError listing the known names."""
    info = find_dataset(dataset)
    if info is None:
        raise ConfigError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return info


def split_path(dataset: str, split: str, root: Optional[PathLike] = None, glance: bool = False) -> Path:
    """The annotation file of a split (its point-label file when ``glance``)."""
    info = dataset_info(dataset)
    if split not in info.splits:
        raise ConfigError(f"unknown split {split!r} of {dataset}; expected one of {', '.join(info.splits)}")
    base = Path(root) if root is not None else data_root() / info.folder
    if not glance:
        return base / info.splits[split]
    if split in info.glance:
        return base / info.glance[split]
    if info.glance_pattern is None:
        raise DataError(
            base, f"no point labels ship for {dataset}; make some with momentloc.data.points.generate_glance"
        )
    missing = base / info.glance_pattern.format(split=split)
    raise DataError(
        missing,
        f"no point labels ship for {dataset} {split}; make some with momentloc.data.points.generate_glance",
    )


def load_pairs(
    dataset: str,
    split: str,
    root: Optional[PathLike] = None,
    glance: bool = False,
    skip_bad: bool = False,
    report: Optional[ParseReport] = None,
) -> list[Pair]:
    """Load one split of a shipped benchmark; ``root`` is the dataset folder (default under data_root())."""
    info = dataset_info(dataset)
    path = split_path(dataset, split, root, glance)
    parser = FORMATS[info.fmt]
    kwargs: dict[str, Any] = {"skip_bad": skip_bad, "report": report}
    if info.fmt in ("charades", "tacos", "activitynet"):
        kwargs["glance"] = glance
    return parser(path, **kwargs)


def load_annotation_file(
    path: PathLike,
    fmt: Optional[str] = None,
    skip_bad: bool = False,
    report: Optional[ParseReport] = None,
    **options: Any,
) -> list[Pair]:
    """Parse any supported annotation file; the format is guessed from its content when ``fmt`` is None."""
    if fmt is None:
        fmt = guess_format(path)
    info = find_dataset(fmt)
    fmt = info.fmt if info is not None and fmt not in FORMATS else fmt
    if fmt not in FORMATS:
        raise ConfigError(f"unknown annotation format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[fmt](path, skip_bad=skip_bad, report=report, **options)


_SNIFF_BYTES = 1 << 20


def guess_format(path: PathLike) -> str:
    """Name the format of an annotation file (a key of FORMATS) from its first bytes."""
    head = read_bytes(path)[:_SNIFF_BYTES].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    first_line = head.split("\n", 1)[0].strip()
    if head.startswith("["):
        body = head[1:].lstrip()
        if body.startswith("["):
            return "cfmr_glance"
        if body.startswith("{") and ('"annotation_id"' in head or '"num_segments"' in head):
            return "didemo"
    elif head.startswith("{"):
        if first_line.endswith("}") and '"qid"' in first_line:
            return "qvhighlights"
        if '"fps"' in head or '"num_frames"' in head:
            return "tacos"
        if '"duration"' in head and '"timestamps"' in head:
            return "activitynet"
    elif "##" in first_line and len(first_line.split("##", 1)[0].split()) == 3:
        return "charades"
    raise DataError(path, f"cannot tell the annotation format from its content; pass fmt= one of {', '.join(FORMATS)}")
