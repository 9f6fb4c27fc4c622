"""Predictor: a checkpoint -> localize(video or features, queries) -> ranked moments in seconds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from momentloc.data.dataset import collate
from momentloc.data.features import check_features, resample
from momentloc.errors import DataError, MomentlocError
from momentloc.types import Moment


@dataclass
class EncodedVideo:
    """Clip features of one video, prepared once for many queries."""

    features: torch.Tensor  # [T, D] after the checkpoint's resampling
    duration: float
    name: str = "video"


class Predictor:
    """Loads a checkpoint once; encodes a video once; answers many queries against it."""

    def __init__(self, module, device: Union[str, torch.device] = "cpu") -> None:
        self.module = module.to(device).eval()
        self.model = module.model
        self.vocab = module.vocab
        self.cfg = module.cfg
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path], device: Optional[str] = None) -> "Predictor":
        """Load a momentloc checkpoint (safely: ``weights_only``)."""
        from momentloc.training import module_from_checkpoint

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(module_from_checkpoint(Path(path)), dev)

    @property
    def feature_dim(self) -> int:
        """The clip-feature width the checkpoint was trained on."""
        return int(self.cfg.data.feature_dim)

    def encode_video(self, video: Union[np.ndarray, str, Path], duration: Optional[float] = None, fps: Optional[float] = None) -> EncodedVideo:
        """Prepare features [T, D] (or a video file, through the feature extractor) for localization."""
        if isinstance(video, (str, Path)):
            from momentloc.video import features_for_checkpoint

            feats, dur = features_for_checkpoint(Path(video), self.cfg)
            name = Path(video).name
        else:
            feats, name = np.asarray(video, dtype=np.float32), "features"
            if duration is None:
                if fps is None:
                    raise MomentlocError("localize(features): give the video's duration in seconds (or fps)")
                duration = feats.shape[0] / fps
            dur = float(duration)
        feats = check_features(feats, name, "<features>", self.feature_dim)
        if self.cfg.data.num_clips is not None:
            feats = resample(feats, self.cfg.data.num_clips)
        elif self.cfg.data.max_clips is not None and feats.shape[0] > self.cfg.data.max_clips:
            feats = resample(feats, self.cfg.data.max_clips)
        if self.cfg.data.normalize_features:
            feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-6)
        if dur <= 0:
            raise DataError(None, f"duration must be positive, got {dur}")
        return EncodedVideo(torch.from_numpy(np.ascontiguousarray(feats)), dur, name)

    @torch.no_grad()
    def localize(
        self,
        video: Union[EncodedVideo, np.ndarray, str, Path],
        queries: Union[str, Sequence[str]],
        top_k: int = 5,
        duration: Optional[float] = None,
        batch_size: int = 64,
    ) -> list[list[Moment]]:
        """Top-k moments (seconds, best first) for each query."""
        enc = video if isinstance(video, EncodedVideo) else self.encode_video(video, duration)
        qs = [queries] if isinstance(queries, str) else list(queries)
        out: list[list[Moment]] = []
        for start in range(0, len(qs), batch_size):
            items = []
            for j, q in enumerate(qs[start : start + batch_size]):
                ids, _ = self.vocab.encode(q, self.cfg.data.text.max_words)
                if len(ids) == 0 or not (ids > 1).any():
                    raise DataError(None, f"query {q!r} has no known words for this checkpoint's vocabulary")
                items.append({"index": start + j, "video_id": enc.name, "video": enc.features,
                              "word_ids": torch.from_numpy(ids), "duration": enc.duration})
            batch = collate(items, self.vocab).to(self.device)
            res = self.model(batch)
            out.extend(self.model.decode(res, batch, top_k))
        return out
