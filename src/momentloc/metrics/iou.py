"""The one temporal IoU of the package: metrics, decoding, training targets and plots all call it.

Rule (docs/metrics.md): for windows [s1, e1] and [s2, e2],

* intersection = max(0, min(e1, e2) - max(s1, s2));
* union = max(0, e1 - s1) + max(0, e2 - s2) - intersection (a window with
  end < start counts as empty);
* IoU = intersection / union, and **0 when the union has length 0** (two
  identical points carry no overlap information). No epsilon is added: a union
  of any positive length divides exactly, so IoU is 1 for equal windows and
  exactly 0 for windows that only touch.

Works on numpy arrays (float64) and torch tensors (the dtype of ``a``; integer
inputs are computed in float64), differentiably for tensors.

``hull_iou`` is the same rule written with the union as the hull, max(e1, e2) -
min(s1, s2), which equals the union whenever the windows overlap (and the IoU
is 0 when they do not). It rounds differently, so it is kept for the grid
models whose outputs are defined by it: the prior baseline, whose windows are
decided by exact ties IoU == target on its grid, and 2D-TAN's scaled-IoU
labels, which the official release also computes this way; on both, the
other rounding changes what the model returns or learns.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def _torch_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if not a.is_floating_point():
        a = a.double()
    b = b.to(device=a.device, dtype=a.dtype)
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = (a[..., 1] - a[..., 0]).clamp(min=0) + (b[..., 1] - b[..., 0]).clamp(min=0) - inter
    # The clamp only keeps the unselected branch finite (and its gradient zero) where the union is 0.
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(a.dtype).tiny), torch.zeros_like(inter))


def _numpy_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    union = np.clip(a[..., 1] - a[..., 0], 0.0, None) + np.clip(b[..., 1] - b[..., 0], 0.0, None) - inter
    out = np.zeros(np.broadcast(inter, union).shape, dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def temporal_iou(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """Elementwise IoU of windows ``a[..., 2]`` and ``b[..., 2]`` (broadcasting; numpy or torch)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a_t = torch.as_tensor(a)
        return _torch_iou(a_t, torch.as_tensor(b, device=a_t.device))
    return _numpy_iou(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def hull_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise IoU of windows ``a[..., 2]`` and ``b[..., 2]`` with the union taken as their hull (see above)."""
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    hull = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    return torch.where(hull > 0, inter / hull.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def pairwise_iou(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """IoU of every window in ``a[..., N, 2]`` with every window in ``b[..., M, 2]`` -> ``[..., N, M]``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a_t = torch.as_tensor(a)
        b_t = torch.as_tensor(b, device=a_t.device)
        return temporal_iou(a_t.unsqueeze(-2), b_t.unsqueeze(-3))
    return temporal_iou(np.asarray(a)[..., :, None, :], np.asarray(b)[..., None, :, :])
