"""The simulated Charades-STA: real sentences, moments and action timelines; simulated clip features.

Every Charades-STA window is one segment of its video's Charades action
timeline, so the look of each clip is rendered from what the timeline says
happens in it (``momentloc data simulate charades``):

* a class looks like a nonlinear mix of its verb part and its object part
  (classes sharing a verb or an object partly look alike) plus a small part of
  its own;
* an action has phases: its start, middle and end have different verb parts
  (reaching, holding, putting down), so one clip does not show the whole moment;
* actions at once mix inside one saturating nonlinearity, not as a sum;
* the actor's style shifts every action they do; the scene is a slowly
  drifting background; the objects the csv lists are faintly present all along;
* the visible action starts and ends off the annotated times (jitter), some
  instances are barely visible, clips are noisy (a nuisance inside the
  nonlinearity and independent noise per dimension), and a Gaussian filter
  over time stands in for a 3D-CNN's receptive field.

Each property is a field of :class:`SimSpec`; setting it to 0 switches it off.
The world (every prototype) is a function of the seed alone, and each
video's features of (seed, video id), so a slice of the videos has the same
features as the full store.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from momentloc.data.charades_timeline import (
    CLASSES_FILE,
    ActionClass,
    VideoTimeline,
    charades_csvs,
    object_name,
    object_vocabulary,
    read_classes,
    read_timelines,
)
from momentloc.data.features import smooth, write_store
from momentloc.files import write_text_atomic

FORMAT_VERSION = 1
STORE_NAME = "features.hdf5"
DATASETS = ("charades",)


@dataclass(frozen=True)
class SimSpec:
    """The knobs of the simulation; 0 switches a property off (see the module docstring)."""

    seed: int = 0
    dim: int = 1024  # feature dimension
    rate: float = 4.0  # clips per second of video
    latent_dim: int = 32
    class_part: float = 0.5  # a class's own part beside its verb and object parts
    phases: float = 1.0  # how different an action's start, middle and end look
    actor: float = 0.5  # the actor's style in everything they do
    scene: float = 1.0  # strength of the scene background
    drift: float = 0.3  # slow variation of the background over the video
    objects: float = 0.3  # listed objects, faintly present all along
    jitter: float = 1.0  # std (s) of the visible start/end around the annotated ones
    faint: float = 0.05  # share of barely visible instances
    faint_gain: float = 0.25  # their strength (visible ones draw theirs from [min_gain, 1])
    min_gain: float = 0.5
    nuisance: float = 1.0  # clip-level nuisance inside the nonlinearity (camera, light, pose)
    noise: float = 1.0  # independent noise per dimension (std at dim 1024; scaled by sqrt(dim / 1024))
    smoothing: float = 1.5  # Gaussian temporal filter, std in clips
    max_videos: Optional[int] = None  # simulate only these many videos (a slice; see ``slice_ids``)


POSITIVE_KNOBS = ("dim", "latent_dim", "rate", "max_videos")
INTEGER_KNOBS = ("seed", "dim", "latent_dim", "max_videos")


def _knob_value(key: str, value: object) -> Optional[float]:
    """One knob's value checked: a finite number, an integer where it counts, positive or non-negative."""
    if value is None and key == "max_videos":
        return None
    integral = key in INTEGER_KNOBS
    kind = "an integer" if integral else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"simulation knob {key}: expected {kind}, got {value!r}")
    if integral and value != int(value):
        raise ValueError(f"simulation knob {key}: expected {kind}, got {value!r}")
    positive = key in POSITIVE_KNOBS
    if value < 0 or (positive and value == 0):
        raise ValueError(f"simulation knob {key}: expected a {'positive' if positive else 'non-negative'} number, "
                         f"got {value!r}")
    return int(value) if integral else float(value)


def spec_from(values: dict) -> SimSpec:
    """A spec from a mapping, naming any unknown knob or a value of the wrong kind."""
    known = {f.name for f in fields(SimSpec)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown simulation knob(s) {unknown}; known: {', '.join(sorted(known))}")
    return SimSpec(**{key: _knob_value(key, value) for key, value in values.items()})


def spec_record(spec: SimSpec) -> dict:
    """The spec as meta.json stores it."""
    return asdict(spec)


def spec_tag(spec: SimSpec) -> str:
    """A folder name for a spec: dim, seed and a short hash of every knob (``d1024_s0_3f9a2c1e``)."""
    digest = hashlib.sha256(json.dumps(spec_record(spec), sort_keys=True).encode()).hexdigest()[:8]
    slice_part = f"_n{spec.max_videos}" if spec.max_videos is not None else ""
    return f"d{spec.dim}_s{spec.seed}{slice_part}_{digest}"


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed] + [zlib.crc32(k.encode()) for k in keys])


def _latents(seed: int, kind: str, names: Iterable[str], k: int) -> dict[str, np.ndarray]:
    """One seeded standard-normal latent per name (independent of which other names exist)."""
    return {n: _rng(seed, kind, n).standard_normal(k) for n in names}


class World:
    """The fixed random look of every class, phase, actor, scene and object for one seed."""

    PHASE_CENTRES = np.array([1 / 6, 1 / 2, 5 / 6])
    PHASE_WIDTH = 0.18

    def __init__(self, spec: SimSpec, classes: Sequence[ActionClass]) -> None:
        self.spec = spec
        k, d, s = spec.latent_dim, spec.dim, spec.seed
        rng = _rng(s, "projections")
        self.A = rng.standard_normal((d, k)) / np.sqrt(k)  # verb part
        self.B = rng.standard_normal((d, k)) / np.sqrt(k)  # object part
        self.C = rng.standard_normal((d, k)) / np.sqrt(k)  # verb x object interaction, class part
        self.N = rng.standard_normal((d, k)) / np.sqrt(k)  # nuisance
        self.classes = {c.cid: c for c in classes}
        verbs = sorted({c.verb for c in classes})
        self.verb = _latents(s, "verb", verbs, k)
        self.phase = {v: _rng(s, "phase", v).standard_normal((3, k)) for v in verbs}
        self.obj_latent: dict[str, np.ndarray] = {}
        self.own = _latents(s, "class", self.classes, k)

    def object(self, name: Optional[str]) -> np.ndarray:
        """The latent of an object (zeros for none), seeded by its name."""
        if name is None:
            return np.zeros(self.spec.latent_dim)
        if name not in self.obj_latent:
            self.obj_latent[name] = _rng(self.spec.seed, "object", name).standard_normal(self.spec.latent_dim)
        return self.obj_latent[name]

    def preactivation(self, cid: str, phase_mix: np.ndarray, style: np.ndarray) -> np.ndarray:
        """[T, D] pre-activation of class ``cid`` at clips whose phase weights are ``phase_mix`` [T, 3]."""
        c, sp = self.classes[cid], self.spec
        verb = self.verb[c.verb][None, :] + sp.phases * phase_mix @ self.phase[c.verb] + sp.actor * style[None, :]
        obj = self.object(c.obj)
        inter = verb * obj[None, :] + sp.class_part * self.own[cid][None, :]
        return verb @ self.A.T + (obj @ self.B.T)[None, :] + inter @ self.C.T

    def templates(self, cid: str) -> np.ndarray:
        """[3, D] the look of class ``cid`` at its start, middle and end, by a style-less actor (what an oracle may know)."""
        return np.tanh(self.preactivation(cid, np.eye(3), np.zeros(self.spec.latent_dim)))

    def fingerprint(self) -> str:
        """A short hash of the world's projections and class latents."""
        h = hashlib.sha256()
        for arr in (self.A, self.B, self.C, self.N):
            h.update(np.ascontiguousarray(arr[:8], dtype=np.float64).tobytes())
        for cid in sorted(self.own):
            h.update(self.own[cid].tobytes())
        return h.hexdigest()[:16]


def num_clips(length: float, rate: float) -> int:
    """Clips of a video of ``length`` seconds at ``rate`` clips per second."""
    return max(1, int(np.ceil(length * rate - 1e-6)))


def phase_weights(u: np.ndarray) -> np.ndarray:
    """[T, 3] soft start/middle/end weights at relative positions ``u`` in [0, 1]."""
    z = -0.5 * ((u[:, None] - World.PHASE_CENTRES[None, :]) / World.PHASE_WIDTH) ** 2
    w = np.exp(z - z.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def _envelope(t: np.ndarray, start: float, end: float, edge: float = 0.3) -> np.ndarray:
    """Visibility in [0, 1]: a soft box from ``start`` to ``end`` seconds."""
    a = np.clip((t - start) / edge, -30, 30)
    b = np.clip((end - t) / edge, -30, 30)
    return 1.0 / (1.0 + np.exp(-a)) / (1.0 + np.exp(-b))


def render(world: World, video: VideoTimeline, known_objects: set[str]) -> np.ndarray:
    """[T, D] float32 features of one video."""
    sp = world.spec
    rng = _rng(sp.seed, "video", video.video_id)
    T = num_clips(video.length, sp.rate)
    t = (np.arange(T) + 0.5) / sp.rate
    style = _rng(sp.seed, "actor", video.subject).standard_normal(sp.latent_dim)
    pre = np.zeros((T, sp.dim))
    for cid, s, e in video.actions:
        if cid not in world.classes:
            continue
        js, je = rng.normal(0.0, sp.jitter, 2) if sp.jitter > 0 else (0.0, 0.0)
        s_vis = float(np.clip(s + js, 0.0, video.length))
        e_vis = float(np.clip(e + je, 0.0, video.length))
        if e_vis < s_vis + 0.5:  # keep a visible instance at least half a second long
            mid = (s + e) / 2
            s_vis, e_vis = mid - 0.25, mid + 0.25
        faint = rng.random() < sp.faint
        gain = sp.faint_gain if faint else rng.uniform(sp.min_gain, 1.0)
        env = _envelope(t, s_vis, e_vis)
        on = env > 1e-3
        if not on.any():
            continue
        u = np.clip((t[on] - s_vis) / max(e_vis - s_vis, 1e-6), 0.0, 1.0)
        pre[on] += (gain * env[on])[:, None] * world.preactivation(cid, phase_weights(u), style)
    if sp.nuisance > 0:
        nz = smooth(rng.standard_normal((T, sp.latent_dim)), 2.0 * max(sp.smoothing, 1.0))
        nz /= nz.std() + 1e-8
        pre += sp.nuisance * nz @ world.N.T
    feats = np.tanh(pre)
    if sp.scene > 0:
        scene = _rng(sp.seed, "scene", video.scene).standard_normal(sp.dim)
        house = rng.standard_normal(sp.dim)  # the same scene in another home
        feats += sp.scene * 0.5 * (scene + 0.5 * house)
    if sp.drift > 0:
        for _ in range(3):
            freq = rng.uniform(1 / 60, 1 / 15)
            feats += sp.drift * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))[:, None] * rng.standard_normal(sp.dim)
    if sp.objects > 0 and video.objects:
        look = sum(np.tanh(world.object(object_name(o, known_objects)) @ world.B.T) for o in video.objects)
        feats += sp.objects * look / np.sqrt(len(video.objects))
    if sp.noise > 0:
        feats += sp.noise * np.sqrt(sp.dim / 1024) * rng.standard_normal(feats.shape)
    return smooth(feats, sp.smoothing).astype(np.float32)


def slice_ids(video_ids: Iterable[str], n: Optional[int], seed: int = 0) -> list[str]:
    """``n`` of the ids in a seeded, stable order (all of them, sorted, when ``n`` is None)."""
    ids = sorted(set(video_ids))
    if n is None or n >= len(ids):
        return ids
    return sorted(sorted(ids, key=lambda v: zlib.crc32(f"{seed}:{v}".encode()))[:n])


@dataclass
class Source:
    """What the simulation reads: the class table and every Charades video's timeline."""

    classes: list[ActionClass]
    timelines: dict[str, VideoTimeline]
    known_objects: set[str]


def read_source(root: Path) -> Source:
    """Read the class list and both csv files from the Charades-STA folder ``root``."""
    timelines = read_timelines(charades_csvs(root))
    known = object_vocabulary(timelines)
    return Source(read_classes(root / CLASSES_FILE, known), timelines, known)


def sta_video_ids(root: Path) -> dict[str, list[str]]:
    """The Charades-STA videos of each split (train, test), read from its annotation files."""
    out = {}
    for split in ("train", "test"):
        path = root / f"charades_sta_{split}.txt"
        out[split] = sorted({line.split(" ", 1)[0] for line in path.read_text().splitlines() if line.strip()})
    return out


def videos_to_render(root: Path, spec: SimSpec) -> list[str]:
    """The Charades-STA videos the spec asks for: all, or a slice of each split (``max_videos``, test gets a quarter)."""
    splits = sta_video_ids(root)
    if spec.max_videos is None:
        return sorted(set(splits["train"]) | set(splits["test"]))
    n_test = max(1, spec.max_videos // 4)
    return sorted(set(slice_ids(splits["train"], spec.max_videos)) | set(slice_ids(splits["test"], n_test)))


def _class_table(classes: Sequence[ActionClass]) -> str:
    rows = ["class\tverb\tobject\tname"] + [f"{c.cid}\t{c.verb}\t{c.obj or '-'}\t{c.name}" for c in classes]
    return "\n".join(rows) + "\n"


def simulate_charades(root: Path, out: Path, spec: SimSpec, progress: bool = False) -> Path:
    """Write ``out/features.hdf5`` (streaming, video by video), ``meta.json`` and ``classes.tsv``."""
    src = read_source(root)
    world = World(spec, src.classes)
    ids = videos_to_render(root, spec)
    missing = [v for v in ids if v not in src.timelines]
    if missing:
        raise ValueError(f"{len(missing)} Charades-STA videos have no row in the Charades csv files: {missing[:5]}")

    def items() -> Iterator[tuple[str, np.ndarray]]:
        it: Iterable[str] = ids
        if progress:
            from tqdm import tqdm

            it = tqdm(ids, desc="simulate charades", unit="video", leave=False)
        for vid in it:
            yield vid, render(world, src.timelines[vid], src.known_objects)

    out.mkdir(parents=True, exist_ok=True)
    write_store(out / STORE_NAME, items())
    write_text_atomic(out / "classes.tsv", _class_table(src.classes))
    meta = {"format_version": FORMAT_VERSION, "dataset": "charades", "spec": spec_record(spec),
            "fingerprint": world.fingerprint(), "videos": len(ids), "source": str(root)}
    write_text_atomic(out / "meta.json", json.dumps(meta, indent=1))
    return out


def is_current(out: Path, spec: SimSpec) -> bool:
    """True when ``out`` holds a complete simulation made with exactly ``spec``."""
    try:
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (meta.get("format_version") == FORMAT_VERSION and meta.get("spec") == spec_record(spec)
            and (out / STORE_NAME).is_file())


def ensure_simulated(root: Path, out: Path, spec: SimSpec, progress: bool = False) -> Path:
    """Simulate into ``out`` unless an identical simulation is already there."""
    if is_current(out, spec):
        return out
    return simulate_charades(root, out, spec, progress)
