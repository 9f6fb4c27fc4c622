"""The protocol every grounding model implements, and its shared pieces."""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, Sequence, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from momentloc.types import Batch, Moment


_RENAMES_SHOWN: dict[Any, Any] = {}  # the warnings registry of old parameter names: each shown once


class ModelConfig(BaseModel):
    """Base of every model's hyper-parameter block; unknown keys are errors.

    ``renamed`` maps a parameter's old name to its new one: configs and checkpoints that still use the old
    name load as before, with a one-line FutureWarning.
    """

    model_config = ConfigDict(extra="forbid")
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _accept_old_names(cls, data: Any) -> Any:
        """Old parameter names (``renamed``) read as their new ones; giving both names is an error."""
        if not isinstance(data, dict) or not cls.renamed.keys() & data.keys():
            return data
        out = dict(data)
        for old, new in cls.renamed.items():
            if old in out:
                if new in out:
                    raise ValueError(f"{old!r} is the old name of {new!r}: give only {new!r}")
                # One line without a source location (the old name is in a config, not in Python code), once a process.
                warnings.warn_explicit(f"{cls.__name__}: parameter {old!r} is now called {new!r}; the old name still "
                                       f"works, rename it in the config", FutureWarning, "momentloc", 0,
                                       module="momentloc", registry=_RENAMES_SHOWN)
                out[new] = out.pop(old)
        return out


@dataclass
class Output:
    """What ``forward`` returns: named tensors, free per model.

    Models that support plug-in objectives fill ``embeddings`` with the
    names those objectives read: ``clips`` [B,T,H], ``clip_mask`` [B,T],
    ``sentence`` [B,H], ``words`` [B,L,H], ``word_mask`` [B,L], and for
    pyramid models ``levels`` (list of [B,T_l,H]) with ``level_masks``.
    """

    tensors: dict[str, Any] = field(default_factory=dict)
    embeddings: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.tensors[key]


@dataclass(frozen=True)
class InputSpec:
    """What the data layer must give a model."""

    video_dim: int
    text_dim: int
    vocab_size: int
    num_clips: Optional[int]  # fixed T the dataset resamples to; None = variable


class GroundingModel(nn.Module, metaclass=ABCMeta):
    """Base class: forward / loss / decode, all times in seconds outside."""

    supervision: ClassVar[str]  # "full", "weak" or "point": each model declares it (register_model checks)
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    registry_name: ClassVar[str] = ""

    def __init__(self, cfg: ModelConfig, spec: InputSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec

    @abstractmethod
    def forward(self, batch: Batch) -> Output:
        """Run the model on a batch."""

    @abstractmethod
    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """Training losses; key ``total`` is optimised."""

    @abstractmethod
    def decode(self, out: Output, batch: Batch, k: int = 5) -> list[list[Moment]]:
        """Top-``k`` moments per pair, seconds, best first."""


def host_lengths(mask: torch.Tensor, known: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Valid entries per row (at least 1) as a CPU tensor, for ``pack_padded_sequence``: from ``known``
    (``Batch.word_lengths`` / ``video_lengths``) when given, else counted on the device and read back (a sync)."""
    if known is not None:
        return torch.tensor(known, dtype=torch.long).clamp(min=1)
    return mask.sum(1).clamp(min=1).cpu()


def first_row_per_video(group: torch.Tensor, order: Optional[torch.Tensor] = None,
                        num_videos: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(one batch row per distinct video, sorted by video, and for every row the index of its video).

    The row chosen for a video is its first in ``order``, a permutation of the
    rows (default: batch order; a random one draws a row per video uniformly).
    With ``num_videos`` (``Batch.num_videos``: ``group`` numbers the videos
    0 .. num_videos - 1) no ``torch.unique`` is needed, so a GPU is not asked
    for the number of videos.
    """
    if num_videos is None:
        videos, inverse = torch.unique(group, return_inverse=True)
        num_videos = int(videos.shape[0])
    else:
        inverse = group
    b = group.shape[0]
    rank = torch.arange(b, device=group.device) if order is None else order
    best = torch.full((num_videos,), b, device=group.device, dtype=torch.long)
    best = best.scatter_reduce(0, inverse, rank, reduce="amin")
    return (best if order is None else torch.argsort(rank)[best]), inverse


R = TypeVar("R")


def _take_rows(x: Any, rows: torch.Tensor) -> Any:
    """``x[rows]`` for every tensor in a tensor, tuple, list or dict (other values as they are)."""
    if isinstance(x, torch.Tensor):
        return x[rows]
    if isinstance(x, dict):
        return {k: _take_rows(v, rows) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_take_rows(v, rows) for v in x)
    return x


def once_per_video(encode: Callable[[torch.Tensor, torch.Tensor], R], batch: Batch, training: bool) -> R:
    """``encode(video, video_mask)`` for every row of ``batch`` (outputs with the batch as first dim).

    At inference it runs once per distinct video (``Batch.video_group``) and the
    rows of one video share the result, so many queries on one video cost one
    video encoding. In training it runs on every row: one dropout draw per pair,
    and no device sync for ``torch.unique``.
    """
    if training:
        return encode(batch.video, batch.video_mask)
    first, inverse = first_row_per_video(batch.video_group, num_videos=batch.num_videos)
    if first.shape[0] == batch.video.shape[0]:
        return encode(batch.video, batch.video_mask)
    return _take_rows(encode(batch.video[first], batch.video_mask[first]), inverse)
