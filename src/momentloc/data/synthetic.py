"""The compositional synthetic benchmark (``momentloc data synth``).

Actions are (verb, object) pairs; an event's features are a nonlinear mix of
a verb part and an object part, so a sentence is grounded only by composing
its words. Every video holds several events that share a verb or an object
with each other (hard distractors), background between them, clip noise and
temporal smoothing. Each event is the target of one sentence. Files are
written in the ActivityNet Captions layout (json + hdf5 + a GloVe-style
pickle), so the real data path runs on them unchanged.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np

from momentloc.data.features import smooth, write_store
from momentloc.data.text import hashed_vector, tokenize, write_glove_pickle
from momentloc.files import write_text_atomic

VERBS = ["opens", "closes", "holds", "takes", "puts", "washes", "throws", "fixes", "watches", "cleans", "carries", "tidies"]
OBJECTS = ["door", "book", "cup", "laptop", "towel", "phone", "bag", "shoes", "box", "window", "sandwich", "pillow"]
TEMPLATES = [
    "a person {v} the {o}.",
    "the person {v} a {o}.",
    "someone {v} the {o} in the room.",
    "person {v} {o}.",
    "a man {v} the {o} slowly.",
    "the woman {v} a {o} then stops.",
]
FORMAT_VERSION = 3


@dataclass(frozen=True)
class SynthSpec:
    """Size and difficulty of a synthetic benchmark."""

    train_videos: int = 400
    val_videos: int = 80
    test_videos: int = 120
    feature_dim: int = 128
    text_dim: int = 300
    latent_dim: int = 32
    min_duration: float = 20.0
    max_duration: float = 45.0
    fps: float = 1.0  # clips per second
    min_events: int = 3
    max_events: int = 5
    noise: float = 1.8  # std of per-clip noise (an event's signal has std about 0.6)
    smoothing: float = 1.5  # Gaussian temporal smoothing, in clips
    min_gain: float = 0.2  # per-event signal strength is drawn from [min_gain, 1]
    clutter: float = 0.6  # background holds faint unnamed actions of this strength
    # Moment lengths: None draws 8-40 % of the video (Charades-like); (lo, hi) draws seconds
    # log-uniformly, for long videos with short moments (MAD, Ego4D-NLQ).
    moment_seconds: Optional[tuple[float, float]] = None
    seed: int = 0


SIZES = {
    "ci": SynthSpec(),
    "bench": SynthSpec(train_videos=3000, val_videos=300, test_videos=600),
    "long": SynthSpec(
        train_videos=300, val_videos=40, test_videos=60, min_duration=2000.0, max_duration=4000.0,
        min_events=4, max_events=8, moment_seconds=(4.0, 240.0),
    ),
}


class _World:
    """The fixed random prototypes shared by every split of one benchmark."""

    def __init__(self, spec: SynthSpec) -> None:
        rng = np.random.default_rng(spec.seed + 7919)
        d, k = spec.feature_dim, spec.latent_dim
        self.verb = rng.standard_normal((len(VERBS), k))
        self.obj = rng.standard_normal((len(OBJECTS), k))
        self.A = rng.standard_normal((d, k)) / np.sqrt(k)
        self.Bm = rng.standard_normal((d, k)) / np.sqrt(k)
        self.C = rng.standard_normal((d, k)) / np.sqrt(k)
        self.background = rng.standard_normal((4, d)) * 0.5

    def prototype(self, v: int, o: int) -> np.ndarray:
        """Features of action (v, o): a nonlinear mix with an interaction term."""
        lin = self.A @ self.verb[v] + self.Bm @ self.obj[o]
        inter = self.C @ (self.verb[v] * self.obj[o])
        return np.tanh(lin) + 0.5 * np.tanh(inter)


def _actions(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    """n distinct actions of which each shares its verb or object with another."""
    v0, o0 = int(rng.integers(len(VERBS))), int(rng.integers(len(OBJECTS)))
    acts = [(v0, o0)]
    while len(acts) < n:
        base = acts[int(rng.integers(len(acts)))]
        if rng.random() < 0.5:
            cand = (base[0], int(rng.integers(len(OBJECTS))))
        else:
            cand = (int(rng.integers(len(VERBS))), base[1])
        if cand not in acts:
            acts.append(cand)
    order = rng.permutation(n)
    return [acts[i] for i in order]


def _layout(rng: np.random.Generator, duration: float, n: int,
            moment_seconds: Optional[tuple[float, float]] = None) -> list[tuple[float, float]]:
    """n non-overlapping windows with Charades-like lengths (or log-uniform seconds) and uniform positions."""
    if moment_seconds is None:
        lengths = rng.uniform(0.08, 0.4, n) * duration
    else:
        lengths = np.exp(rng.uniform(np.log(moment_seconds[0]), np.log(moment_seconds[1]), n))
    if lengths.sum() > 0.85 * duration:
        lengths *= 0.85 * duration / lengths.sum()
    gaps = rng.dirichlet(np.ones(n + 1)) * (duration - lengths.sum())
    out, t = [], 0.0
    for i in range(n):
        t += gaps[i]
        out.append((round(t, 2), round(t + lengths[i], 2)))
        t += lengths[i]
    return out


def _video(world: _World, spec: SynthSpec, rng: np.random.Generator):
    duration = float(rng.uniform(spec.min_duration, spec.max_duration))
    T = max(8, int(round(duration * spec.fps)))
    n = int(rng.integers(spec.min_events, spec.max_events + 1))
    acts = _actions(rng, n)
    windows = _layout(rng, duration, n, spec.moment_seconds)
    bg = world.background[rng.integers(len(world.background))] + 0.3 * rng.standard_normal(spec.feature_dim)
    feats = np.tile(bg, (T, 1))
    # Clutter: faint random actions drifting through the background, so that
    # "something happens here" is not enough to find the named action.
    clutter_act = world.prototype(int(rng.integers(len(VERBS))), int(rng.integers(len(OBJECTS))))
    drift = np.sin(np.linspace(0, rng.uniform(1, 4) * np.pi, T) + rng.uniform(0, 6.3))[:, None]
    feats += spec.clutter * drift * clutter_act
    centers = (np.arange(T) + 0.5) / spec.fps
    for (v, o), (s, e) in zip(acts, windows):
        inside = (centers >= s) & (centers < e)
        if not inside.any():  # very short window: mark its nearest clip
            inside[min(T - 1, int((s + e) / 2 * spec.fps))] = True
        proto = world.prototype(v, o)
        gain = rng.uniform(spec.min_gain, 1.0)
        # Amplitude varies within an event so boundaries are not a step.
        amp = gain * (0.5 + 0.5 * np.sin(np.linspace(0.15, np.pi - 0.15, inside.sum())))
        feats[inside] = 0.5 * feats[inside] + amp[:, None] * proto
    feats = feats + spec.noise * rng.standard_normal(feats.shape)
    feats = smooth(feats, spec.smoothing).astype(np.float32)
    sentences = [TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(v=VERBS[v], o=OBJECTS[o]) for v, o in acts]
    return duration, feats, windows, sentences


def generate(root: Union[str, Path], spec: SynthSpec) -> Path:
    """Write the benchmark under ``root`` (train/val/test json, features.hdf5, glove.pkl, meta.json)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    world = _World(spec)
    feats_all: list[tuple[str, np.ndarray]] = []
    counter: Counter = Counter()
    for split, n, off in (("train", spec.train_videos, 0), ("val", spec.val_videos, 1), ("test", spec.test_videos, 2)):
        rng = np.random.default_rng([spec.seed, off])
        ann = {}
        for i in range(n):
            vid = f"syn_{split}_{i:05d}"
            duration, feats, windows, sentences = _video(world, spec, rng)
            ann[vid] = {"duration": round(duration, 2), "timestamps": [list(w) for w in windows], "sentences": sentences}
            feats_all.append((vid, feats))
            if split == "train":
                counter.update(t for s in sentences for t in tokenize(s))
        _write_json(root / f"{split}.json", ann)
    write_store(root / "features.hdf5", feats_all)
    words = sorted({t for tpl in TEMPLATES for v in VERBS for o in OBJECTS for t in tokenize(tpl.format(v=v, o=o))})
    vectors = np.stack([hashed_vector(w, spec.text_dim) for w in words])
    write_glove_pickle(root / "glove.pkl", words, vectors, counter)
    _write_json(root / "meta.json", {"format_version": FORMAT_VERSION, "spec": spec_record(spec)})
    return root


def _write_json(path: Path, obj: object) -> None:
    write_text_atomic(path, json.dumps(obj))


def spec_record(spec: SynthSpec) -> dict:
    """The spec as meta.json stores it: JSON types, unset options left out (older sets stay valid)."""
    return json.loads(json.dumps({k: v for k, v in asdict(spec).items() if v is not None}))


def spec_for(size: str, seed: int = 0) -> SynthSpec:
    """The named size (ci, bench, long) with a seed."""
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; known: {', '.join(SIZES)}")
    return replace(SIZES[size], seed=seed)


def ensure_synthetic(root: Union[str, Path], size: str = "ci", seed: int = 0) -> Path:
    """Generate the benchmark at ``root`` unless an identical one is already there."""
    root = Path(root)
    spec = spec_for(size, seed)
    meta = root / "meta.json"
    if meta.exists():
        try:
            have = json.loads(meta.read_text())
            if have.get("format_version") == FORMAT_VERSION and have.get("spec") == spec_record(spec):
                return root
        except (OSError, json.JSONDecodeError):
            pass
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        # Generated files go only into a folder made for them, never among someone else's files.
        from momentloc.errors import DataError

        raise DataError(root, "holds other files and no synthetic benchmark (meta.json); the benchmark is generated "
                              "only into a new or empty folder")
    return generate(root, spec)
