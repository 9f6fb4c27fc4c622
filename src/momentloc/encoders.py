"""Frame encoders behind one interface (a fixed tiny conv net; CLIP from local weights) and the feature spec they stamp."""

from __future__ import annotations

import hashlib
from abc import ABCMeta, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from momentloc.errors import CheckpointError, DataError, MomentlocError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class FeatureSpec:
    """How clip features were made: encoder, its weights' fingerprint, width, sampling fps, frames per clip."""

    encoder: str
    dim: int
    fps: float
    frames_per_clip: int = 1
    fingerprint: str = ""
    weights: Optional[str] = None  # where the weights were read from; a hint for prediction

    @property
    def clip_seconds(self) -> float:
        """Seconds of video one clip feature covers."""
        return self.frames_per_clip / self.fps

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "feature spec") -> "FeatureSpec":
        """Validate a dict read from a store or a checkpoint."""
        try:
            return cls(**{k: raw[k] for k in raw if k in cls.__dataclass_fields__})
        except (TypeError, KeyError) as err:
            raise DataError(where, f"not a feature spec ({err})") from None

    def same_features(self, other: "FeatureSpec") -> bool:
        """True when both specs produce interchangeable features (the weights path may differ)."""
        keys = ("encoder", "dim", "fps", "frames_per_clip", "fingerprint")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    def describe(self) -> str:
        """One short phrase for error messages."""
        pooled = f", {self.frames_per_clip} frames per clip" if self.frames_per_clip != 1 else ""
        return f"encoder {self.encoder!r} (dim {self.dim}, weights {self.fingerprint or '?'}) at {self.fps:g} fps{pooled}"


class FrameEncoder(metaclass=ABCMeta):
    """Frames uint8 [N,H,W,3] -> features [N, dim]. ``short_side`` lets the decoder shrink frames first."""

    name: str = "encoder"
    dim: int = 0
    short_side: Optional[int] = None
    fingerprint: str = ""
    weights: Optional[str] = None

    @abstractmethod
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Encode a batch of RGB frames."""

    def spec(self, fps: float, frames_per_clip: int = 1) -> FeatureSpec:
        """The feature spec of this encoder at a sampling rate."""
        return FeatureSpec(self.name, int(self.dim), float(fps), int(frames_per_clip), self.fingerprint, self.weights)


def _fingerprint_tensors(state: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(np.ascontiguousarray(state[key].detach().cpu().numpy(), dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: PathLike) -> str:
    """sha256 prefix of a file's bytes (cached by path, size and mtime)."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()[:16]
    return _SHA_CACHE[key]


class TinyEncoder(FrameEncoder):
    """A fixed random conv net, deterministic from its seed: for tests and demos, not for real benchmarks."""

    name = "tiny"
    short_side = 64

    def __init__(self, dim: int = 32, seed: int = 0, state: Optional[dict] = None) -> None:
        import torch
        from torch import nn

        self.dim, self.seed = int(dim), int(seed)
        self.net = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(16, self.dim, 3, stride=2, padding=1),
                                 nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
        if state is not None:
            self.net.load_state_dict(state)
        else:
            # numpy's PCG64 stream is stable across versions, so the same seed gives the same net anywhere.
            rng = np.random.default_rng(self.seed)
            with torch.no_grad():
                for p in self.net.parameters():
                    fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else 1
                    scale = np.sqrt(2.0 / fan_in) if p.dim() > 1 else 0.1
                    p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32) * scale))
        self.fingerprint = _fingerprint_tensors(self.net.state_dict())

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Frames [N,H,W,3] uint8 -> [N, dim] float32."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
            x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
            return self.net(x).numpy().astype(np.float32)

    def save(self, path: PathLike) -> Path:
        """Write the weights to a local .pt file (atomically)."""
        from momentloc.checkpoint import atomic_save

        return atomic_save({"kind": "momentloc-tiny-encoder", "dim": self.dim, "seed": self.seed,
                            "state_dict": self.net.state_dict()}, path)

    @classmethod
    def load(cls, path: PathLike) -> "TinyEncoder":
        """Read weights written by :meth:`save`."""
        import torch

        try:
            raw = torch.load(Path(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise DataError(path, "encoder weights not found") from None
        except Exception as err:  # truncated or foreign file
            raise DataError(path, f"not a tiny-encoder weights file ({type(err).__name__})") from None
        if not isinstance(raw, dict) or raw.get("kind") != "momentloc-tiny-encoder":
            raise DataError(path, "not a tiny-encoder weights file")
        enc = cls(raw["dim"], raw["seed"], raw["state_dict"])
        enc.weights = str(Path(path).resolve())
        return enc


class ClipEncoder(FrameEncoder):
    """CLIP image (and text) towers through open_clip, from a local weights file; nothing is downloaded."""

    short_side = 224

    def __init__(self, weights: PathLike, model: str = "ViT-B-32", device: str = "cpu") -> None:
        weights = Path(weights)
        if not weights.is_file():
            raise DataError(weights, "CLIP weights file not found (give a local file; nothing is downloaded)")
        try:
            import open_clip
        except ImportError:
            raise MomentlocError("the clip encoder needs open_clip: pip install 'momentloc[clip]'") from None
        self.device = device
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(model, pretrained=str(weights), device=device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model)
        self.name, self.weights = f"clip:{model}", str(weights.resolve())
        self.fingerprint = file_fingerprint(weights)
        out_dim = getattr(getattr(self.model, "visual", None), "output_dim", None)
        self.dim = int(out_dim) if out_dim else int(self.encode(np.zeros((1, 224, 224, 3), np.uint8)).shape[1])

    def _unit(self, x: Any) -> np.ndarray:
        x = x.float()
        return (x / x.norm(dim=-1, keepdim=True).clamp(min=1e-6)).cpu().numpy().astype(np.float32)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Frames [N,H,W,3] uint8 -> L2-normalised image embeddings [N, dim]."""
        import torch
        from PIL import Image

        batch = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames]).to(self.device)
        with torch.no_grad():
            return self._unit(self.model.encode_image(batch))

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Sentences -> L2-normalised text embeddings [N, dim] (the same space as the frames)."""
        import torch

        with torch.no_grad():
            return self._unit(self.model.encode_text(self.tokenizer(list(texts)).to(self.device)))


def load_encoder(kind: str, weights: Optional[PathLike] = None, model: str = "ViT-B-32", device: str = "cpu") -> FrameEncoder:
    """``tiny`` (built-in seed-0 net, or a saved .pt) or ``clip`` (open_clip + local weights)."""
    if kind == "tiny":
        return TinyEncoder.load(weights) if weights else TinyEncoder()
    if kind == "clip" or kind.startswith("clip:"):
        if not weights:
            raise MomentlocError("the clip encoder needs --weights: a local open_clip weights file")
        return ClipEncoder(weights, kind.split(":", 1)[1] if ":" in kind else model, device)
    raise MomentlocError(f"unknown encoder {kind!r}; expected 'tiny' or 'clip'")


def encoder_for_spec(spec: FeatureSpec, weights: Optional[PathLike] = None, device: str = "cpu") -> FrameEncoder:
    """Rebuild the encoder a feature spec names (its recorded weights path unless ``weights`` is given)."""
    path = weights or spec.weights
    if spec.encoder.startswith("clip:") and not path:
        raise CheckpointError(f"features came from {spec.describe()}; give the CLIP weights file")
    if path and not Path(path).is_file():
        raise CheckpointError(f"features came from {spec.describe()}, whose weights file {path} is gone; give it with --weights")
    if spec.encoder == "tiny" and not path:
        return check_encoder(spec, TinyEncoder(dim=spec.dim))  # the built-in net; the fingerprint confirms the seed
    return check_encoder(spec, load_encoder(spec.encoder, path, device=device))


def check_encoder(spec: FeatureSpec, encoder: FrameEncoder) -> FrameEncoder:
    """Refuse an encoder whose features differ from the spec's (name, width or weights)."""
    if encoder.name != spec.encoder or int(encoder.dim) != spec.dim or (spec.fingerprint and encoder.fingerprint != spec.fingerprint):
        have = encoder.spec(spec.fps, spec.frames_per_clip)
        raise CheckpointError(f"the model was trained on features of {spec.describe()}; asked to use {have.describe()}")
    return encoder
