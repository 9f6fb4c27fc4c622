"""VLANet (Ma et al., ECCV 2020): weakly supervised moment retrieval.

Surrogate Proposal Selection picks, in every group of windows that share a
start, the window closest to the sentence; the Cascaded Cross-modal
Attention (dense attention V2V, Q2Q, then alternating V<-Q / Q<-V) weighs
the surrogates; a margin loss ranks the true (video, sentence) pair above
pairs with the sentence of another video of the batch. At inference the
surrogates are ranked by the weight the cascade gave each of them (the
paper's "learned attention weights by CCA"; other scores are options) and
the best ones are the moments.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import field_validator
from torch import nn

from momentloc.models.base import GroundingModel, InputSpec, ModelConfig, Output, once_per_video
from momentloc.models.weak_layers import (
    clip_bounds_to_seconds,
    last_valid,
    margin_hinge,
    rank_segments,
    sample_negatives,
    valid_lengths,
)
from momentloc.registry import register_model
from momentloc.types import Batch, Moment


class VLANetConfig(ModelConfig):
    """VLANet hyper-parameters (windows and stride in `window_unit`)."""

    hidden: int = 512  # D, the joint space
    gru_hidden: int = 512
    gru_layers: int = 1
    windows: list[int] = [22, 26, 30]  # proposal lengths in one segment group (in window_unit)
    stride: int = 1  # distance between the starts of consecutive segment groups (in window_unit)
    # "clips": windows and stride count clips of the model's input; "frames": frames of the
    # source video at `fps`, turned into clips per video with its feature rate (clips / second).
    window_unit: Literal["clips", "frames"] = "clips"
    fps: float = 24.0  # frame rate of the source videos ("frames" only)
    surrogate: bool = True  # False: every proposal of every group is attended (paper ablation)
    self_attention: bool = True  # V2V and Q2Q
    cross_attention: bool = True  # the cascade of cross-modal steps
    cross_steps: int = 3  # alternating V<-A(V,Q), Q<-A(Q,V), V<-A(V,Q), ...
    rescale_attention: bool = False  # N * softmax: keep the mean magnitude through the cascade (see docs)
    # Eq. 7 sums tanh over the elements of Y ("sum", the paper); "mean" divides by their number
    # so the softmax temperature does not grow with the number of elements (see docs).
    energy: Literal["sum", "mean"] = "sum"
    # Localisation score of a surrogate at inference:
    # "attention" (the paper): the weight the CCA gives it in v_comp (log of the product of the
    #   softmax weights of every video-side dense attention, V2V and the query-guided steps);
    # "query_attention": the query-guided steps' weights only;
    # "similarity": the VLA function E between the attended surrogate and the attended query
    #   (the row sums of the paper's Fig. 5 map);
    # "random": a control, a uniformly random window among all K x L proposals.
    # Without any video-side attention step, "attention" and "query_attention" fall back to "similarity".
    localize: Literal["attention", "query_attention", "similarity", "random"] = "attention"
    margin: float = 0.5
    num_negatives: int = 1
    # Whose partner is replaced in a negative pair: the sentence (the paper's Q-),
    # the video, or both terms averaged.
    negatives: Literal["query", "video", "both"] = "query"
    dropout: float = 0.0
    nms_iou: float = 0.5

    @field_validator("windows")
    @classmethod
    def _windows_positive(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 1:
            raise ValueError("windows must be a non-empty list of positive clip counts")
        return sorted(v)

    @field_validator("stride", "cross_steps", "num_negatives", "hidden", "gru_hidden", "gru_layers")
    @classmethod
    def _at_least_one(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v


class DenseAttention(nn.Module):
    """A(X, Y): re-weight the elements of X by softmax_n sum_m tanh(W1 x_n . W2 y_m) (Eqs. 7-8)."""

    def __init__(self, dim: int, rescale: bool = True, mean: bool = False) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, dim, bias=False)
        self.w2 = nn.Linear(dim, dim, bias=False)
        self.rescale = rescale
        self.mean = mean

    def energy(self, x: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
        """VLA function E(x_n, Y) for every n: x [B,N,D], y [B,M,D] -> [B,N]."""
        pair = torch.tanh(torch.einsum("bnd,bmd->bnm", self.w1(x), self.w2(y)))
        e = (pair * y_mask[:, None, :].to(pair.dtype)).sum(-1)
        return e / y_mask.sum(-1, keepdim=True).clamp(min=1).to(e.dtype) if self.mean else e

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, y: torch.Tensor,
                y_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attended X [B,N,D] and the log attention weights [B,N] (-inf on padding)."""
        e = self.energy(x, y, y_mask).masked_fill(~x_mask, float("-inf"))
        log_w = torch.log_softmax(e, dim=-1)
        w = log_w.exp()
        if self.rescale:
            # N * softmax keeps the mean element magnitude: without it each step
            # shrinks the features by ~1/N and the next tanh sits in its linear part.
            w = w * x_mask.sum(-1, keepdim=True).to(w.dtype)
        return x * w[..., None], log_w


class CascadedAttention(nn.Module):
    """CCA: V<-A(V,V), Q<-A(Q,Q) (Eqs. 9-10), then alternating cross steps (Eqs. 11-12)."""

    def __init__(self, dim: int, self_attention: bool, cross_attention: bool, cross_steps: int,
                 rescale: bool, mean: bool) -> None:
        super().__init__()
        self.v2v = DenseAttention(dim, rescale, mean) if self_attention else None
        self.q2q = DenseAttention(dim, rescale, mean) if self_attention else None
        steps = cross_steps if cross_attention else 0
        self.cross = nn.ModuleList(DenseAttention(dim, rescale, mean) for _ in range(steps))

    def forward(self, v: torch.Tensor, v_mask: torch.Tensor, q: torch.Tensor,
                q_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor],
                                               Optional[torch.Tensor]]:
        """Attended V, Q, and the summed log weights [B,N] of every video-side step (V2V and the
        query-guided ones: the log weight of each element in v_comp, up to a constant) and of the
        query-guided steps alone (each None where there is no such step)."""
        log_all: Optional[torch.Tensor] = None
        if self.v2v is not None and self.q2q is not None:
            v, log_all = self.v2v(v, v_mask, v, v_mask)
            q = self.q2q(q, q_mask, q, q_mask)[0]
        log_q: Optional[torch.Tensor] = None
        for i, att in enumerate(self.cross):
            if i % 2 == 0:
                v, lw = att(v, v_mask, q, q_mask)
                log_q = lw if log_q is None else log_q + lw
            else:
                q = att(q, q_mask, v, v_mask)[0]
        if log_q is not None:
            log_all = log_q if log_all is None else log_all + log_q
        return v, q, log_all, log_q


def proposal_groups(n_valid: torch.Tensor, num_clips: int, windows: list[int],
                    stride: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segment groups: start [B,K,L], end (exclusive) [B,K,L], valid [B,K,L], in clips.

    Group k starts at k*stride and holds one window per length; a group exists
    where its shortest window fits the padded length; windows that run past a
    video's end are cut at the end, and a video shorter than the shortest
    window keeps its first group.
    """
    shortest = min(windows)
    k_groups = max(1, (num_clips - shortest) // stride + 1)
    starts = torch.arange(k_groups, device=n_valid.device) * stride
    lengths = torch.tensor(windows, device=n_valid.device)
    n = n_valid.view(-1, 1, 1)
    start = starts.view(1, -1, 1).expand(n_valid.shape[0], -1, len(windows))
    end = torch.minimum(start + lengths.view(1, 1, -1), n)
    valid = ((start + shortest) <= n) | (start == 0)
    return start, end, valid


def timed_proposal_groups(n_valid: torch.Tensor, duration: torch.Tensor, windows_s: list[float],
                          stride_s: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segment groups of fixed durations: start, end [B,K,L] in (fractional) clips, valid [B,K,L].

    Windows and stride are seconds, turned into clips with each video's own
    feature rate n_valid / duration, so a window covers the same time in every
    video whatever its length. Group k starts at k*stride_s seconds; a group
    exists where its shortest window fits the video; windows that run past the
    end are cut at it; a video shorter than the shortest window keeps its first
    group. K is the largest number of groups in the batch (one read of the
    durations on the host).
    """
    dur = duration.to(torch.float32).clamp(min=1e-6)
    rate = n_valid.to(torch.float32) / dur  # clips per second
    shortest = min(windows_s)
    count = (torch.floor((dur - shortest) / stride_s + 1e-4) + 1).clamp(min=1)  # 1e-4: float32 rounding
    k_groups = int(count.max())
    starts = torch.arange(k_groups, device=dur.device, dtype=torch.float32) * stride_s
    lengths = torch.tensor(windows_s, device=dur.device, dtype=torch.float32)
    r, n = rate.view(-1, 1, 1), n_valid.to(torch.float32).view(-1, 1, 1)
    start = (starts.view(1, -1, 1) * r).expand(-1, -1, len(windows_s))
    end = torch.minimum(start + lengths.view(1, 1, -1) * r, n)
    valid = (torch.arange(k_groups, device=dur.device).view(1, -1, 1) < count.view(-1, 1, 1)).expand_as(start)
    return start, end, valid


def pool_segments(x: torch.Tensor, mask: torch.Tensor, start: torch.Tensor,
                  end: torch.Tensor) -> torch.Tensor:
    """Mean of x [B,T,D] over clips [start, end) for index tensors [B,...] -> [B,...,D].

    Fractional bounds weigh the clips they cut by the covered fraction (each
    clip's feature holds for its whole interval), so the mean is that of the
    frames the segment covers.
    """
    x = x * mask[..., None].to(x.dtype)
    csum = torch.cat([x.new_zeros(x.shape[0], 1, x.shape[2]), x.cumsum(1)], 1)
    flat_s, flat_e = start.reshape(x.shape[0], -1), end.reshape(x.shape[0], -1)
    t = x.shape[1]

    def at(pos: torch.Tensor) -> torch.Tensor:
        if not pos.is_floating_point():
            return csum.gather(1, pos[..., None].expand(-1, -1, x.shape[2]))
        lo = pos.floor().long().clamp(0, t)
        hi = (lo + 1).clamp(max=t)
        frac = (pos - lo.to(pos.dtype)).clamp(0, 1).to(x.dtype)[..., None]
        c_lo = csum.gather(1, lo[..., None].expand(-1, -1, x.shape[2]))
        c_hi = csum.gather(1, hi[..., None].expand(-1, -1, x.shape[2]))
        return c_lo + frac * (c_hi - c_lo)

    width = (flat_e - flat_s).to(x.dtype)
    width = width.clamp(min=1) if not flat_s.is_floating_point() else width.clamp(min=1e-6)
    mean = (at(flat_e) - at(flat_s)) / width[..., None]
    return mean.view(*start.shape, x.shape[2])


@register_model("vlanet")
class VLANet(GroundingModel):
    """Video-Language Alignment Network, weakly supervised (video-level pairs only)."""

    supervision = "weak"
    Config = VLANetConfig

    def __init__(self, cfg: VLANetConfig, spec: InputSpec) -> None:
        super().__init__(cfg, spec)
        self.cfg: VLANetConfig = cfg
        d = cfg.hidden
        self.gru = nn.GRU(spec.text_dim, cfg.gru_hidden, num_layers=cfg.gru_layers, batch_first=True)
        self.query_fc = nn.Linear(cfg.gru_hidden, d)
        self.video_fc = nn.Linear(spec.video_dim, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.cca = CascadedAttention(d, cfg.self_attention, cfg.cross_attention, cfg.cross_steps,
                                     cfg.rescale_attention, cfg.energy == "mean")
        # energy(): the VLA function of Eq. 13 (c = E(v_comp, Q)) and of the "similarity" score.
        self.scorer = DenseAttention(d, mean=cfg.energy == "mean")

    def encode_query(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Q = L2-normalised GRU states [B,M,D] (Eq. 1), word mask, and the final state w_M."""
        mask = batch.word_mask.clone()
        mask[:, 0] |= ~mask.any(1)  # an empty sentence keeps one (zero) word
        h, _ = self.gru(self.drop(batch.words))
        q = F.normalize(self.query_fc(h), dim=-1) * mask[..., None].to(h.dtype)
        return q, mask, last_valid(q, mask)

    def encode_video(self, video: torch.Tensor, video_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Projected clips [B,T,D] and the valid clip counts."""
        return {"clips": self.video_fc(self.drop(video)), "n_valid": valid_lengths(video_mask)}

    def proposals(self, clips: torch.Tensor, video_mask: torch.Tensor, n_valid: torch.Tensor,
                  duration: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every proposal of every segment group (Eq. 2): bounds in clips and unit-length features."""
        if self.cfg.window_unit == "frames":
            fps = self.cfg.fps
            start, end, valid = timed_proposal_groups(n_valid, duration, [w / fps for w in self.cfg.windows],
                                                      self.cfg.stride / fps)
        else:
            start, end, valid = proposal_groups(n_valid, clips.shape[1], self.cfg.windows, self.cfg.stride)
        props = F.normalize(pool_segments(clips, video_mask, start, end), dim=-1)
        return {"props": props, "start": start, "end": end, "valid": valid}

    def match(self, props: torch.Tensor, valid: torch.Tensor, q: torch.Tensor, q_mask: torch.Tensor,
              q_last: torch.Tensor) -> dict[str, torch.Tensor]:
        """Similarity c (Eq. 13) and one localisation score per attended proposal."""
        if self.cfg.surrogate:
            # Eqs. 3-5: hard argmax, so only the chosen window of each group gets gradient.
            sim = torch.einsum("bkld,bd->bkl", props, q_last).masked_fill(~valid, float("-inf"))
            pick = sim.argmax(-1)
            v = props.gather(2, pick[..., None, None].expand(-1, -1, 1, props.shape[-1])).squeeze(2)
            v_mask = valid.any(-1)
        else:
            pick = None
            v, v_mask = props.flatten(1, 2), valid.flatten(1)
        v, q, log_all, log_q = self.cca(v, v_mask, q, q_mask)
        # Eq. 13: v_comp is the sum of the re-weighted elements (the weighted mean sum_k a_k s_k
        # when the weights are rescaled by N).
        v_comp = (v * v_mask[..., None].to(v.dtype)).sum(1)
        if self.cfg.rescale_attention:
            v_comp = v_comp / v_mask.sum(1, keepdim=True).to(v.dtype)
        c = self.scorer.energy(v_comp[:, None], q, q_mask)[:, 0]
        score = {"attention": log_all, "query_attention": log_q}.get(self.cfg.localize)
        if score is None:
            score = self.scorer.energy(v, q, q_mask)
        return {"similarity": c, "scores": score.masked_fill(~v_mask, float("-inf")),
                "valid": v_mask, "pick": pick if pick is not None else v_mask.new_zeros(0)}

    def forward(self, batch: Batch) -> Output:
        """Encode both sides, select surrogates, attend, score."""
        enc = once_per_video(self.encode_video, batch, self.training)
        vid = self.proposals(enc["clips"], batch.video_mask, enc["n_valid"], batch.duration)
        q, q_mask, q_last = self.encode_query(batch)
        m = self.match(vid["props"], vid["valid"], q, q_mask, q_last)
        start, end = vid["start"], vid["end"]
        scores, seg_valid = m["scores"], m["valid"]
        if self.cfg.localize == "random" and not self.training:
            # The control: a uniformly random window among all K x L proposals.
            start, end, seg_valid = start.flatten(1), end.flatten(1), vid["valid"].flatten(1)
            scores = torch.rand(seg_valid.shape, device=seg_valid.device).masked_fill(~seg_valid, float("-inf"))
        elif self.cfg.surrogate:
            start = start.gather(2, m["pick"][..., None]).squeeze(2)
            end = end.gather(2, m["pick"][..., None]).squeeze(2)
        else:
            start, end = start.flatten(1), end.flatten(1)
        segments = clip_bounds_to_seconds(start, end, enc["n_valid"], batch.duration)
        tensors = {
            "similarity": m["similarity"], "proposal_scores": scores,
            "proposal_segments": segments, "proposal_valid": seg_valid,
            "props": vid["props"], "props_valid": vid["valid"],
            "query": q, "query_mask": q_mask, "query_last": q_last,
        }
        embeddings = {"clips": enc["clips"], "clip_mask": batch.video_mask, "sentence": q_last,
                      "words": q, "word_mask": q_mask}
        return Output(tensors=tensors, embeddings=embeddings)

    def _negative_similarity(self, out: Output, vid_idx: torch.Tensor, q_idx: torch.Tensor) -> torch.Tensor:
        t = out.tensors
        return self.match(t["props"][vid_idx], t["props_valid"][vid_idx], t["query"][q_idx],
                          t["query_mask"][q_idx], t["query_last"][q_idx])["similarity"]

    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """Margin loss (Eq. 14): max(0, Delta - c(V,Q+) + c(V,Q-)), negatives from other videos."""
        c_pos = out["similarity"]
        n = self.cfg.num_negatives
        neg, ok = sample_negatives(batch.video_group, n)
        own = torch.arange(c_pos.shape[0], device=c_pos.device).repeat_interleave(n)
        pairs = []  # (video index, query index) of each negative pair
        if self.cfg.negatives in ("query", "both"):
            pairs.append((own, neg.flatten()))
        if self.cfg.negatives in ("video", "both"):
            pairs.append((neg.flatten(), own))
        c_negs = [self._negative_similarity(out, v, q).view(-1, n) for v, q in pairs]
        total = torch.stack([margin_hinge(c_pos, c, ok, self.cfg.margin) for c in c_negs]).mean()
        return {
            "total": total,
            "contrastive": total.detach(),
            "sim_pos": c_pos.detach().mean(),
            "sim_neg": torch.cat(c_negs, 1).detach().mean(),
        }

    def decode(self, out: Output, batch: Batch, k: int = 5) -> list[list[Moment]]:
        """Surrogates ranked by their localisation score (`localize`), NMS, seconds."""
        return rank_segments(out["proposal_segments"], out["proposal_scores"], out["proposal_valid"],
                             batch.duration, k, self.cfg.nms_iou)
