"""Batched 1-D non-maximum suppression (hard and Soft-NMS) and top-k selection, pure torch.

All functions take ``segments [B, N, 2]`` (start, end; any unit), ``scores
[B, N]`` and an optional ``valid [B, N]`` mask, and return the ``k`` kept
segments per row, best first: ``(segments [B, k, 2], scores [B, k], valid
[B, k])``. Rows with fewer than ``k`` survivors are padded with zeros and
``valid = False``. Unbatched ``[N, 2]`` / ``[N]`` inputs give unbatched outputs.

The loops run over the ``k`` kept items only; each step is a vectorised
operation over the batch and the candidates, so the cost is O(k * B * N)
time and O(B * N) memory (no N x N IoU matrix).
"""

from __future__ import annotations

from typing import Literal, Optional

import torch

from momentloc.metrics.iou import temporal_iou
from momentloc.types import Moment

Result = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _prepare(
    segments: torch.Tensor, scores: torch.Tensor, valid: Optional[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    unbatched = segments.dim() == 2
    if unbatched:
        segments, scores = segments.unsqueeze(0), scores.unsqueeze(0)
        valid = None if valid is None else valid.unsqueeze(0)
    if segments.dim() != 3 or segments.shape[-1] != 2 or scores.shape != segments.shape[:2]:
        got = f"{tuple(segments.shape)} and {tuple(scores.shape)}"
        raise ValueError(f"expected segments [B,N,2] and scores [B,N], got {got}")
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    # NaN scores would win or lose argmax arbitrarily; treat them as absent.
    valid = valid.to(torch.bool) & ~torch.isnan(scores)
    return segments, scores, valid, unbatched


def _iou_to(picked: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """IoU of ``picked [B, 2]`` with every row of ``segments [B, N, 2]`` -> ``[B, N]``."""
    s = segments.float() if not segments.is_floating_point() else segments
    return temporal_iou(picked.to(s.dtype).unsqueeze(1), s)


def _select(
    segments: torch.Tensor,
    scores: torch.Tensor,
    valid: torch.Tensor,
    k: int,
    suppress,
) -> Result:
    """Greedy loop shared by NMS and Soft-NMS: pick the best alive candidate, then let ``suppress`` update."""
    batch, n = scores.shape
    rows = torch.arange(batch, device=scores.device)
    out_seg = segments.new_zeros((batch, k, 2))
    out_score = scores.new_zeros((batch, k))
    out_valid = torch.zeros((batch, k), dtype=torch.bool, device=scores.device)
    alive = valid.clone()
    current = scores.clone()
    neg_inf = torch.tensor(float("-inf"), dtype=current.dtype, device=current.device)
    # Always min(k, n) rounds, without asking the device whether any candidate is left (a sync per round):
    # a row with none left marks its remaining slots invalid.
    for t in range(min(k, n)):
        # argmax returns the first maximum: equal scores keep input order.
        idx = torch.where(alive, current, neg_inf).argmax(dim=1)
        has = alive[rows, idx]
        picked = segments[rows, idx]
        out_seg[:, t] = torch.where(has.unsqueeze(1), picked, torch.zeros_like(picked))
        out_score[:, t] = torch.where(has, current[rows, idx], torch.zeros_like(out_score[:, t]))
        out_valid[:, t] = has
        alive[rows, idx] = False
        iou = _iou_to(picked, segments)
        alive, current = suppress(alive, current, iou, has)
    return out_seg, out_score, out_valid


def _finish(result: Result, unbatched: bool) -> Result:
    if unbatched:
        return result[0][0], result[1][0], result[2][0]
    return result


def topk_segments(segments: torch.Tensor, scores: torch.Tensor, k: int, valid: Optional[torch.Tensor] = None) -> Result:
    """The ``k`` highest-scoring valid segments per row, best first (no suppression)."""
    segments, scores, valid, unbatched = _prepare(segments, scores, valid)
    batch, n = scores.shape
    kk = min(k, n)
    masked = torch.where(valid, scores, torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device))
    # Stable sort so that equal scores keep input order, as in the greedy functions.
    order = torch.sort(masked, dim=1, descending=True, stable=True).indices[:, :kk]
    top_seg = torch.gather(segments, 1, order.unsqueeze(-1).expand(-1, -1, 2))
    top_score = torch.gather(scores, 1, order)
    top_valid = torch.gather(valid, 1, order)
    out_seg = segments.new_zeros((batch, k, 2))
    out_score = scores.new_zeros((batch, k))
    out_valid = torch.zeros((batch, k), dtype=torch.bool, device=scores.device)
    out_seg[:, :kk] = torch.where(top_valid.unsqueeze(-1), top_seg, torch.zeros_like(top_seg))
    out_score[:, :kk] = torch.where(top_valid, top_score, torch.zeros_like(top_score))
    out_valid[:, :kk] = top_valid
    return _finish((out_seg, out_score, out_valid), unbatched)


def nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    k: int,
    valid: Optional[torch.Tensor] = None,
) -> Result:
    """Hard NMS: keep the best segment, drop every candidate with IoU > ``iou_threshold`` to it, repeat ``k`` times.

    No two kept segments of a row overlap with IoU above ``iou_threshold``.
    """
    segments, scores, valid, unbatched = _prepare(segments, scores, valid)

    def suppress(alive, current, iou, has):
        return alive & ~((iou > iou_threshold) & has.unsqueeze(1)), current

    with torch.no_grad():
        return _finish(_select(segments, scores, valid, k, suppress), unbatched)


def soft_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    k: int,
    method: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: Optional[float] = None,
    valid: Optional[torch.Tensor] = None,
) -> Result:
    """Soft-NMS (Bodla et al., ICCV 2017): decay, rather than drop, the scores of overlapping candidates.

    After each pick with IoU ``o`` to a candidate, the candidate's score is
    multiplied by ``exp(-o**2 / sigma)`` (gaussian) or, when ``o > iou_threshold``,
    by ``1 - o`` (linear). With ``score_threshold`` set, candidates whose decayed
    score falls below it are dropped. Scores should be non-negative (a decay
    raises a negative score). Returned scores are the decayed ones, in the
    order picked.
    """
    if method not in ("gaussian", "linear"):
        raise ValueError(f"soft_nms method must be 'gaussian' or 'linear', got {method!r}")
    if method == "gaussian" and sigma <= 0:
        raise ValueError("soft_nms sigma must be > 0")
    segments, scores, valid, unbatched = _prepare(segments, scores, valid)
    if not scores.is_floating_point():
        scores = scores.float()

    def suppress(alive, current, iou, has):
        if method == "gaussian":
            weight = torch.exp(-(iou * iou) / sigma)
        else:
            weight = torch.where(iou > iou_threshold, 1.0 - iou, torch.ones_like(iou))
        weight = torch.where(has.unsqueeze(1), weight, torch.ones_like(weight)).to(current.dtype)
        current = current * weight
        if score_threshold is not None:
            alive = alive & (current >= score_threshold)
        return alive, current

    with torch.no_grad():
        return _finish(_select(segments, scores, valid, k, suppress), unbatched)


def to_moments(segments: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor,
               duration: Optional[torch.Tensor] = None) -> list[list[Moment]]:
    """Kept segments ``[B, k, 2]`` (seconds), ``scores`` and ``valid`` ``[B, k]`` -> each row's valid Moments, in order.

    One device-to-host copy per tensor for the whole batch (reading a GPU tensor
    element by element waits for the device at every element). Ends are put in
    order, and with ``duration [B]`` each segment is clipped to [0, duration].
    """
    segs, sc, ok = segments.detach().float().cpu().tolist(), scores.detach().float().cpu().tolist(), valid.cpu().tolist()
    durs = duration.detach().float().cpu().tolist() if duration is not None else [float("inf")] * len(segs)
    out: list[list[Moment]] = []
    for row, row_sc, row_ok, d in zip(segs, sc, ok, durs):
        moments = []
        for (a, b), score, good in zip(row, row_sc, row_ok):
            if good:
                start, end = min(a, b), max(a, b)
                moments.append(Moment(max(0.0, start) if duration is not None else start, min(d, end), score))
        out.append(moments)
    return out
