"""Charades' own metadata: the 157 action classes as (verb, object) and each video's action timeline.

``Charades_v1_classes.txt`` names every class (``c008 Opening a door``);
``Charades_v1_{train,test}.csv`` give each video's actor (``subject``), scene,
visible objects and its timeline of actions (``c092 11.90 21.20;c147 0.00 12.60``).
The simulated Charades-STA (:mod:`momentloc.data.simulate`) renders features
from these; every Charades-STA window is one of the timeline's segments.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from momentloc.data.formats._common import read_text
from momentloc.data.formats.charades import CSV_NAMES
from momentloc.errors import DataError

CLASSES_FILE = "Charades_v1_classes.txt"

# Verb + particle pairs whose particle changes the action ("turning on" a light is not "turning off").
_PARTICLES = {("turning", "on"), ("turning", "off"), ("putting", "on"), ("taking", "off"), ("standing", "up")}
_VERB_ALIASES = {"wash": "washing"}
_PLURAL_ONLY = {"clothes", "groceries", "stairs", "glasses"}
# Words between a verb and its object that name no object.
_NOT_OBJECTS = {
    "a", "an", "the", "some", "their", "at", "on", "onto", "in", "from", "into", "with", "through", "outside", "of",
    "for", "and", "to", "up", "off", "or", "grabbing", "somewhere", "something", "someone", "themselves",
    "something/someone/themselves", "standing", "sitting",
}


@dataclass(frozen=True)
class ActionClass:
    """One Charades class: its id, name, verb and object (None for actions on no object, e.g. sneezing)."""

    cid: str
    name: str
    verb: str
    obj: Optional[str]


@dataclass(frozen=True)
class VideoTimeline:
    """One Charades video: actor, scene, visible objects, length (s) and its actions (class, start, end)."""

    video_id: str
    subject: str
    scene: str
    objects: tuple[str, ...]
    length: float
    actions: tuple[tuple[str, float, float], ...]


def singular(word: str, known: set[str]) -> str:
    """``word`` without a plural ending when the singular is a known object name (shoes -> shoe, dishes -> dish)."""
    if word in _PLURAL_ONLY:
        return word
    if word.endswith("s") and word[:-1] in known:
        return word[:-1]
    if word.endswith(("shes", "ches", "xes")) and word[:-2] in known:
        return word[:-2]
    return word


def object_name(raw: str, known: set[str]) -> str:
    """The first alternative of ``cup/glass/bottle``, lower case and singular."""
    return singular(raw.split("/")[0].strip().lower(), known)


def parse_class_name(name: str, known_objects: set[str]) -> tuple[str, Optional[str]]:
    """(verb, object) of a class name: ``Holding a cup/glass/bottle of something`` -> (holding, cup)."""
    words = name.strip().split()
    if len(words) >= 2 and words[0].lower() == "someone" and words[1].lower() == "is":
        words = words[2:]
    if not words:
        raise ValueError(f"empty class name {name!r}")
    verb = words[0].split("/")[0].lower()
    verb = _VERB_ALIASES.get(verb, verb)
    rest = [w.lower() for w in words[1:]]
    if rest and (verb, rest[0]) in _PARTICLES:
        verb = f"{verb} {rest[0]}"
        rest = rest[1:]
    for w in rest:
        if w not in _NOT_OBJECTS:
            return verb, object_name(w, known_objects)
    return verb, None


def read_classes(path: Path, known_objects: set[str]) -> list[ActionClass]:
    """The class table's ``c008 Opening a door`` lines, each parsed into (verb, object)."""
    out = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        cid, _, name = line.strip().partition(" ")
        if not (cid.startswith("c") and cid[1:].isdigit() and name):
            raise DataError(path, f"expected a class id and name such as 'c008 Opening a door', got {line.strip()!r}", where=f"line {n}")
        verb, obj = parse_class_name(name, known_objects)
        out.append(ActionClass(cid, name.strip(), verb, obj))
    if not out:
        raise DataError(path, "no classes")
    return out


def _actions(text: str, path: Path, where: str) -> tuple[tuple[str, float, float], ...]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(";"))):
        parts = item.split()
        try:
            cid, s, e = parts[0], float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise DataError(path, f"expected 'CLASS START END' actions such as 'c092 11.90 21.20', got {item!r}", where=where) from None
        # A few source rows have start > end (e.g. LEOL6 c107 8.00 7.00); the segment is the same.
        out.append((cid, min(s, e), max(s, e)))
    return tuple(out)


def read_timelines(csv_paths: Sequence[Path]) -> dict[str, VideoTimeline]:
    """Every video of the given Charades csv files, by id."""
    out: dict[str, VideoTimeline] = {}
    for path in csv_paths:
        reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
        need = {"id", "subject", "scene", "objects", "actions", "length"}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise DataError(path, f"missing column(s) {sorted(missing)} in the header", where="line 1")
        for row in reader:
            where = f"line {reader.line_num}"
            try:
                length = float(row["length"])
            except (TypeError, ValueError):
                raise DataError(path, f"length {row['length']!r} is not a number", where=where) from None
            objects = tuple(o.strip().lower() for o in (row["objects"] or "").split(";") if o.strip())
            out[row["id"]] = VideoTimeline(
                row["id"], row["subject"] or "", row["scene"] or "", objects, length,
                _actions(row["actions"] or "", path, where),
            )
    return out


def charades_csvs(root: Path) -> list[Path]:
    """The two Charades csv files under ``root`` (the Charades-STA annotation folder)."""
    paths = [root / n for n in CSV_NAMES]
    for p in paths + [root / CLASSES_FILE]:
        if not p.is_file():
            raise DataError(p, "file not found (the simulated Charades-STA needs Charades' csv files and class list)")
    return paths


def object_vocabulary(timelines: dict[str, VideoTimeline]) -> set[str]:
    """Every object name the csv files list (first alternatives), for singularising class objects."""
    return {o.split("/")[0] for t in timelines.values() for o in t.objects}
