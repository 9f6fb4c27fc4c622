"""Two reference points for the simulated Charades-STA, both training-free.

* ``oracle``: knows each query's Charades action class (the timeline segment its
  window is) and the class's look in the simulated world; it reads the
  features and returns the best-matching stretch. It bounds what the features
  allow: if it fails, the benchmark is unsolvable, not the method.
* ``salient``: ignores the sentence and returns the stretch that differs most
  from the rest of the video. If it scored far above the prior, the sentence
  would not matter.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from momentloc.data.charades_timeline import VideoTimeline
from momentloc.data.features import FeatureStore
from momentloc.data.simulate import World
from momentloc.metrics import temporal_iou
from momentloc.types import Moment, Pair
from momentloc.zero_shot import LEVEL, best_stretch, stretch_moment  # noqa: F401 - LEVEL, best_stretch re-exported


def query_class(pair: Pair, timeline: VideoTimeline) -> Optional[str]:
    """The class of the timeline segment that best matches the pair's window (None if the timeline is empty)."""
    if not timeline.actions:
        return None
    ious = temporal_iou(np.array([(s, e) for _, s, e in timeline.actions]), np.array(pair.window))
    return timeline.actions[int(np.argmax(ious))][0]


def oracle_moment(features: np.ndarray, duration: float, templates: np.ndarray) -> Moment:
    """The stretch most like the query class's look: per clip, the best cosine with the class's phase templates
    after removing the video mean."""
    f = features - features.mean(axis=0, keepdims=True)
    t = templates - templates.mean(axis=1, keepdims=True)
    cos = (f @ t.T) / (np.linalg.norm(f, axis=1, keepdims=True) * np.linalg.norm(t, axis=1)[None, :] + 1e-8)
    return stretch_moment(cos.max(axis=1), duration)


def salient_moment(features: np.ndarray, duration: float) -> Moment:
    """The stretch farthest from the video's mean look (no sentence)."""
    dist = np.linalg.norm(features - features.mean(axis=0, keepdims=True), axis=1)
    return stretch_moment(dist, duration)


def oracle_predictions(pairs: Sequence[Pair], store: FeatureStore, world: World,
                       timelines: dict[str, VideoTimeline]) -> list[list[Moment]]:
    """One oracle moment per pair."""
    out = []
    for p in pairs:
        cid = query_class(p, timelines[p.video_id])
        feats = store.get(p.video_id)
        if cid is None or cid not in world.classes:
            out.append([Moment(0.0, p.duration, 0.0)])
            continue
        out.append([oracle_moment(feats, p.duration, world.templates(cid))])
    return out


def salient_predictions(pairs: Sequence[Pair], store: FeatureStore) -> list[list[Moment]]:
    """One query-blind moment per pair."""
    return [[salient_moment(store.get(p.video_id), p.duration)] for p in pairs]
