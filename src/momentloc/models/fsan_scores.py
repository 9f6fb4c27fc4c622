"""FSAN's scores and losses on the Semantic Alignment Map P [B,L,T], as pure tensor functions.

Eq. 8's segment scores for every (start, end) by cumulative sums over clips, the inner / outer
losses (Eqs. 9-12) and their weights, and the two decoders that are not in the paper.
"""

from __future__ import annotations

import torch


def interval_sums(x: torch.Tensor) -> torch.Tensor:
    """Sums over every clip interval: x [...,T] -> [...,T,T], entry [s,e] = sum_{j=s..e} x_j (e >= s)."""
    csum = torch.cat([torch.zeros_like(x[..., :1]), x.cumsum(-1)], -1)
    return csum[..., None, 1:] - csum[..., :-1, None]


def _segment_geometry(clip_mask: torch.Tensor,
                      whole_video: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segment lengths [1,T,T], clips outside each segment [B,T,T], valid [B,T,T]."""
    t = clip_mask.shape[1]
    idx = torch.arange(t, device=clip_mask.device)
    length = (idx[None, :] - idx[:, None] + 1).to(torch.float32)[None]
    n_v = clip_mask.sum(1).to(torch.float32).view(-1, 1, 1)
    outside = n_v - length
    # Eq. 8 divides by the number of outside clips: the whole video is a candidate only
    # when asked for (its second term is then 0), or when the video has one clip.
    valid = (length > 0) & (idx.view(1, 1, t) < n_v) & ((outside > 0) | (n_v <= 1) | whole_video)
    return length, outside, valid


def _weakest_response(p: torch.Tensor, tok_mask: torch.Tensor, clip_mask: torch.Tensor) -> torch.Tensor:
    """min_i P_ij over valid tokens for each clip [B,T] (0 on padded clips)."""
    low = p.masked_fill(~tok_mask[:, :, None], float("inf")).min(1).values
    return low.masked_fill(~clip_mask, 0.0)


def _mean_response(p: torch.Tensor, tok_mask: torch.Tensor) -> torch.Tensor:
    """mean_i P_ij over valid tokens for each clip [B,T]."""
    tm = tok_mask.to(p.dtype)
    return (p * tm[:, :, None]).sum(1) / tm.sum(1, keepdim=True).clamp(min=1.0)


def segment_scores(p: torch.Tensor, tok_mask: torch.Tensor, clip_mask: torch.Tensor,
                   whole_video: bool = False, outside_grad: bool = True,
                   outside: str = "min") -> tuple[torch.Tensor, torch.Tensor]:
    """SC_{s,e} of Eq. 8 for every segment: (scores [B,T,T] indexed [s,e], valid [B,T,T]).

    Mean of P over the tokens and the segment's clips, minus the mean over the
    clips outside it of each clip's weakest token response. Eq. 8 divides by
    the number of outside clips, so the whole video is a candidate only with
    ``whole_video`` (or in a one-clip video), its second term then being 0.
    ``outside_grad=False`` keeps the values and stops gradients through the second term;
    ``outside="mean"`` takes each outside clip's mean token response instead of its weakest.
    """
    tm = tok_mask.to(p.dtype)
    n_s = tm.sum(1).clamp(min=1.0)
    per_clip = (p * tm[:, :, None]).sum(1) / n_s[:, None]
    length, n_out, valid = _segment_geometry(clip_mask, whole_video)
    inside_mean = interval_sums(per_clip) / length.clamp(min=1.0)
    if outside == "mean":
        low = per_clip.masked_fill(~clip_mask, 0.0)
    else:
        low = _weakest_response(p, tok_mask, clip_mask)
    out_sum = low.sum(1).view(-1, 1, 1) - interval_sums(low)
    if not outside_grad:
        out_sum = out_sum.detach()
    out_mean = torch.where(n_out > 0, out_sum / n_out.clamp(min=1.0), torch.zeros_like(out_sum))
    sc = (inside_mean - out_mean).masked_fill(~valid, 0.0)
    return sc, valid


def inner_outer_losses(p: torch.Tensor, tok_mask: torch.Tensor, clip_mask: torch.Tensor,
                       sc: torch.Tensor, valid: torch.Tensor, detach_weights: bool = True,
                       outer_response: str = "min", weights: str = "sc",
                       temperature: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """L^i (Eqs. 9-10) and L^o (Eqs. 11-12), each sum_{s,e} w_{s,e} L_{s,e}, batch mean.

    ``weights``: "sc" w = SC_{s,e} / #segments (as printed, the count a constant); "nonneg"
    w = max(SC, 0) / sum max(SC, 0); "softmax" w = softmax over the valid segments of SC / temperature.

    The outer term lowers each outside clip's weakest response as
    -log(1 - (1 + min_i P_ij) / 2): the printed -log(min_i P_ij) is undefined
    for negative cosines and, minimised, would raise the response instead.
    """
    tm = tok_mask.to(p.dtype)
    n_s = tm.sum(1).clamp(min=1.0)
    inner = -(torch.sigmoid(interval_sums(p)) * tm[:, :, None, None]).sum(1) / n_s.view(-1, 1, 1)
    if outer_response == "mean":
        low = _mean_response(p, tok_mask).masked_fill(~clip_mask, 0.0)
    else:
        low = _weakest_response(p, tok_mask, clip_mask)
    q = -torch.log(((1.0 - low) / 2.0).clamp(min=1e-6)) * clip_mask.to(p.dtype)
    _, outside, _ = _segment_geometry(clip_mask)
    q_out = q.sum(1).view(-1, 1, 1) - interval_sums(q)
    outer = torch.where(outside > 0, q_out / outside.clamp(min=1.0), torch.zeros_like(q_out))
    w = sap_weights(sc.detach() if detach_weights else sc, valid, weights, temperature)
    return (w * inner).sum((1, 2)).mean(), (w * outer).sum((1, 2)).mean()


def sap_weights(sc: torch.Tensor, valid: torch.Tensor, kind: str = "sc",
                temperature: float = 0.1) -> torch.Tensor:
    """Per-segment weights of L^i and L^o [B,T,T] (0 on invalid segments); see inner_outer_losses."""
    vf = valid.to(sc.dtype)
    if kind == "softmax":
        logits = (sc / temperature).masked_fill(~valid, float("-inf")).flatten(1)
        w = torch.softmax(logits, 1).view_as(sc)
        return torch.where(valid, w, torch.zeros_like(w))
    if kind == "nonneg":
        w = sc.clamp(min=0.0) * vf
        return w / w.sum((1, 2), keepdim=True).clamp(min=1e-12)
    return sc * vf / vf.sum((1, 2), keepdim=True).clamp(min=1.0)


def reweighted_scores(p: torch.Tensor, tok_mask: torch.Tensor,
                      clip_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 8 with the token mean in its second term, times f (1 - f), f = (e-s+1)/N_v: ([B,T,T], valid).

    f (1 - f) (mean_in r - mean_out r) = sum_{j in [s,e]} (r_j - mean_j r_j) / N_v, so every
    segment, the whole video included (score 0), is a candidate.
    """
    sc, _ = segment_scores(p, tok_mask, clip_mask, whole_video=True, outside="mean")
    length, _, valid = _segment_geometry(clip_mask, whole_video=True)
    f = length / clip_mask.sum(1).to(p.dtype).clamp(min=1.0).view(-1, 1, 1)
    return (sc * f * (1.0 - f)).masked_fill(~valid, 0.0), valid


def excess_scores(p: torch.Tensor, tok_mask: torch.Tensor, clip_mask: torch.Tensor,
                  threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every segment's summed excess response, per clip of the video: ([B,T,T] indexed [s,e], valid).

    r_j is clip j's mean response over the tokens; tau = mean_j r_j + threshold (max_j r_j - mean_j r_j);
    the score of [s, e] is sum_{j=s..e} (r_j - tau) / n_clips. Its maximum is the contiguous run of
    clips above tau that gains most, however long; every segment of the video, the whole video
    included, is a candidate.
    """
    cm = clip_mask.to(p.dtype)
    r = _mean_response(p, tok_mask)
    n = cm.sum(1, keepdim=True).clamp(min=1.0)
    mean = (r * cm).sum(1, keepdim=True) / n
    peak = r.masked_fill(~clip_mask, float("-inf")).max(1, keepdim=True).values
    tau = mean + threshold * (peak - mean)
    scores = interval_sums((r - tau) * cm) / n[:, :, None]
    valid = _segment_geometry(clip_mask, whole_video=True)[2]
    return scores.masked_fill(~valid, 0.0), valid


def best_score(sc: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """S(V, S) = max over valid segments of SC_{s,e} (Eq. 7)."""
    return sc.masked_fill(~valid, float("-inf")).flatten(1).max(1).values
