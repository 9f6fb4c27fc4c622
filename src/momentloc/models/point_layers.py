"""Shared pieces of the point-supervised models (ViGA-style baseline and SG-SCI).

The pipeline follows SG-SCI Sec. 3.2: projected + position-encoded clips,
GloVe -> BiGRU + position-encoded words, self-attention per modality,
cross-modal attention both ways, optional Granularity Correspondence
Alignment (Sec. 3.3), a max-pooled sentence vector, and inference that
expands the best-matching clip into a moment.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from momentloc.models.base import GroundingModel, InputSpec, ModelConfig, Output, host_lengths, once_per_video
from momentloc.types import Batch, Moment

NEG = -1e9  # masked logit; finite so that 0 * masked stays 0 in the losses


class PointConfig(ModelConfig):
    """Hyper-parameters shared by the point-supervised models."""

    dim: int = 512
    num_layers: int = 2  # self- and cross-attention layers per modality
    gru_layers: int = 2
    num_heads: int = 8
    dropout: float = 0.1
    max_clips: int = 128  # learnable clip position table; interpolated when a video is longer
    max_words: int = 64  # learnable word position table
    sigma: float = 0.04  # Gaussian width of Eq. (5), in units of half the video
    temperature: float = 0.07  # softmax temperature over cosine similarities
    # Which tensor the Gaussian (global) loss trains: the word-averaged query-to-clip attention of
    # the last cross-modal layer (the authors' release, ViGA's code) or the clip-sentence cosine S
    # (Eq. 11 read literally; also the control of SG-SCI).
    global_on: Literal["attention", "similarity"] = "attention"
    # On the attention: "logits" is the release's cross-entropy that takes the attention
    # probabilities as logits (log_softmax(A)); "log" is -sum G log A, Eq. (11) with S = A.
    global_form: Literal["logits", "log"] = "logits"
    # Inference anchor: "global" = argmax of the tensor the global loss trains (release:
    # attention; the S reading: S), or one of them explicitly.
    anchor: Literal["global", "similarity", "attention"] = "global"
    pooling: Literal["max", "mean"] = "max"  # moment feature from its clips
    # Proposal score at inference: ViGA's dot product of the pooled unit clip vectors with the
    # unit sentence ("dot"), the cosine of the pooled vector ("cosine"), or the contrast of the
    # clip-sentence similarity inside the span with its flanks ("contrast").
    proposal_score: Literal["dot", "cosine", "contrast"] = "dot"
    contrast_margin: float = 1.0  # flank width per side, as a fraction of the span
    moment_length_factors: list[float] = Field(default_factory=lambda: [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4])
    overlap_factors: list[float] = Field(default_factory=lambda: [round(0.1 * i, 1) for i in range(10)])
    nms_threshold: float = 0.5  # only matters for k > 1


# --------------------------------------------------------------------------- blocks


class FeedForward(nn.Module):
    """Pre-norm position-wise feed-forward block with a residual."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.net = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + FFN(LN(x))."""
        return x + self.net(self.norm(x))


class SelfAttentionLayer(nn.Module):
    """Pre-norm multi-head self-attention + feed-forward; padded rows stay zero."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.ffn = FeedForward(dim, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B,N,D] with mask [B,N] -> [B,N,D]."""
        h = self.norm(x)
        a, _ = self.attn(h, h, h, key_padding_mask=~mask, need_weights=False)
        return self.ffn(x + self.drop(a)) * mask[..., None]


class CrossModalLayer(nn.Module):
    """Words attend to clips and clips attend to words (Eq. 2); returns both score maps."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_w = nn.LayerNorm(dim)
        self.norm_v = nn.LayerNorm(dim)
        self.w2v = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.v2w = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.ffn_w = FeedForward(dim, dropout)
        self.ffn_v = FeedForward(dim, dropout)

    def forward(self, w, w_mask, v, v_mask):  # type: ignore[no-untyped-def]
        """-> (words [B,L,D], clips [B,T,D], word->clip scores [B,L,T], clip->word scores [B,T,L])."""
        wn, vn = self.norm_w(w), self.norm_v(v)
        w_att, w2v = self.w2v(wn, vn, vn, key_padding_mask=~v_mask)
        v_att, v2w = self.v2w(vn, wn, wn, key_padding_mask=~w_mask)
        w = self.ffn_w(w + self.drop(w_att)) * w_mask[..., None]
        v = self.ffn_v(v + self.drop(v_att)) * v_mask[..., None]
        return w, v, w2v, v2w


def positions(table: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows of a learnable position table, linearly stretched when n exceeds it."""
    if n <= table.shape[0]:
        return table[:n]
    return F.interpolate(table.T[None], size=n, mode="linear", align_corners=True)[0].T


def masked_max(x: torch.Tensor, mask: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Max over the valid entries of ``x`` along ``dim`` (mask broadcasts over the last dim)."""
    return x.masked_fill(~mask[..., None], float("-inf")).max(dim=dim).values


def granularity_alignment(
    x: torch.Tensor,
    x_mask: torch.Tensor,
    scores: torch.Tensor,
    other_mask: torch.Tensor,
    other_pooled: torch.Tensor,
    alpha: float,
    prior: str = "both",
) -> torch.Tensor:
    """GCA (Eqs. 6-10) for one modality.

    ``scores`` [B,N,M] holds, in column j, how the other modality's item j
    attends over this modality's N items. The attention prior is the row
    max (Eq. 7), the global prior the cosine with the other side's pooled
    vector (Eq. 8); their mean reweights each item (Eq. 9), and alpha mixes
    the result with the input (Eq. 10).
    """
    attention = scores.masked_fill(~other_mask[:, None, :], float("-inf")).max(dim=2).values
    global_ = F.cosine_similarity(x, other_pooled[:, None, :], dim=-1)
    if prior == "both":
        weight = 0.5 * (global_ + attention)
    elif prior == "attention":
        weight = attention
    else:
        weight = global_
    aligned = weight[..., None] * x
    return (alpha * x + (1.0 - alpha) * aligned) * x_mask[..., None]


class PointEncoder(nn.Module):
    """Feature extraction + multi-modal interaction, then GCA when ``gca`` is given."""

    def __init__(self, cfg: PointConfig, spec: InputSpec, gca: dict | None = None) -> None:
        super().__init__()
        d = cfg.dim
        # Input LayerNorm as in ViGA: clip features of different extractors differ widely in scale.
        self.video_proj = nn.Sequential(nn.LayerNorm(spec.video_dim), nn.Dropout(cfg.dropout), nn.Linear(spec.video_dim, d), nn.ReLU())
        self.video_pos = nn.Parameter(torch.randn(max(cfg.max_clips, spec.num_clips or 0), d) * 0.02)
        self.video_norm = nn.LayerNorm(d)
        self.gru = nn.GRU(spec.text_dim, d // 2, num_layers=cfg.gru_layers, batch_first=True, bidirectional=True,
                          dropout=cfg.dropout if cfg.gru_layers > 1 else 0.0)
        self.word_pos = nn.Parameter(torch.randn(cfg.max_words, d) * 0.02)
        self.word_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.video_self = nn.ModuleList(SelfAttentionLayer(d, cfg.num_heads, cfg.dropout) for _ in range(cfg.num_layers))
        self.word_self = nn.ModuleList(SelfAttentionLayer(d, cfg.num_heads, cfg.dropout) for _ in range(cfg.num_layers))
        self.cross = nn.ModuleList(CrossModalLayer(d, cfg.num_heads, cfg.dropout) for _ in range(cfg.num_layers))
        # gca: {"alpha", "video", "text", "prior"} or None for the plain pipeline.
        self.gca = gca

    def encode_words(self, words: torch.Tensor, mask: torch.Tensor, lengths: Optional[Sequence[int]] = None) -> torch.Tensor:
        """GloVe vectors [B,L,E] -> BiGRU states + learnable positions [B,L,D] (``lengths``: valid words, if known on the host)."""
        packed = nn.utils.rnn.pack_padded_sequence(words, host_lengths(mask, lengths), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=words.shape[1])
        L = words.shape[1]
        if L > self.word_pos.shape[0]:
            raise ValueError(f"query has {L} words; the model's max_words is {self.word_pos.shape[0]}")
        return self.drop(self.word_norm(out + self.word_pos[:L])) * mask[..., None]

    def encode_video(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Clip features [B,T,Dv] -> FC + learnable positions [B,T,D]."""
        v = self.video_proj(video) + positions(self.video_pos, video.shape[1])
        return self.drop(self.video_norm(v)) * mask[..., None]

    def encode_clips(self, batch: Batch) -> torch.Tensor:
        """Projection and self-attention of the clips [B,T,D]. At inference they are computed once per
        distinct video of the batch (many queries on one video cost one video encoding); training keeps
        one dropout draw per pair."""
        def encode(video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            v = self.encode_video(video, mask)
            for layer in self.video_self:
                v = layer(v, mask)
            return v

        return once_per_video(encode, batch, self.training)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Encode a batch; returns clips [B,T,D], words [B,L,D], sentence [B,D] and score maps."""
        v_mask, w_mask = batch.video_mask, batch.word_mask
        v = self.encode_clips(batch)
        w = self.encode_words(batch.words, w_mask, batch.word_lengths)
        for layer in self.word_self:
            w = layer(w, w_mask)
        w2v = v2w = None
        for layer in self.cross:
            w, v, w2v, v2w = layer(w, w_mask, v, v_mask)
        if self.gca is not None:
            v, w = self._align(v, v_mask, w, w_mask, w2v, v2w)
        sentence = masked_max(w, w_mask)
        return {"clips": v, "words": w, "sentence": sentence, "word_to_clip": w2v, "clip_to_word": v2w}

    def _align(self, v, v_mask, w, w_mask, w2v, v2w):  # type: ignore[no-untyped-def]
        """Both GCA branches read the cross-attention outputs, so neither sees the other's result."""
        g = self.gca or {}
        new_v, new_w = v, w
        if g.get("video", True):
            # A_{q->v} [B,T,L]: column j is word j's attention over the clips.
            new_v = granularity_alignment(v, v_mask, w2v.transpose(1, 2), w_mask, masked_max(w, w_mask), g["alpha"], g["prior"])
        if g.get("text", True):
            new_w = granularity_alignment(w, w_mask, v2w.transpose(1, 2), v_mask, masked_max(v, v_mask), g["alpha"], g["prior"])
        return new_v, new_w


# --------------------------------------------------------------------------- targets and losses


def query_attention(word_to_clip: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
    """Word-averaged query-to-clip attention [B,T] from the per-word maps [B,L,T] (valid words only)."""
    w2v = word_to_clip * word_mask[..., None]
    return w2v.sum(1) / word_mask.sum(1, keepdim=True).clamp(min=1)


def glance_index(point: torch.Tensor, duration: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The clip holding the glance: clip i of n covers [i/n, (i+1)/n] * duration."""
    frac = (point / duration.clamp(min=1e-6)).clamp(0.0, 1.0)
    idx = torch.floor(frac * lengths.to(frac.dtype)).long()
    return torch.minimum(idx, lengths - 1).clamp(min=0)


def log_gaussian(center: torch.Tensor, lengths: torch.Tensor, T: int, sigma: float) -> torch.Tensor:
    """log of Eq. (5): G_i = exp(-((i - tau) * 2 / (Lv - 1))^2 / (2 sigma^2)) / (sqrt(2 pi) sigma); [B,T]."""
    i = torch.arange(T, device=center.device, dtype=torch.float32)[None, :]
    scale = 2.0 / (lengths.to(torch.float32) - 1).clamp(min=1.0)
    x = (i - center.to(torch.float32)[:, None]) * scale[:, None]
    return -(x ** 2) / (2 * sigma ** 2) - math.log(math.sqrt(2 * math.pi) * sigma)


def gaussian_weights(center: torch.Tensor, lengths: torch.Tensor, T: int, sigma: float) -> torch.Tensor:
    """Eq. (5) at every clip [B,T]; 0 on padding."""
    valid = torch.arange(T, device=center.device)[None, :] < lengths[:, None]
    return torch.exp(log_gaussian(center, lengths, T, sigma)) * valid


def normalize_target(weights: torch.Tensor) -> torch.Tensor:
    """Scale non-negative weights [B,N] to sum 1 per row."""
    return weights / weights.sum(-1, keepdim=True).clamp(min=1e-30)


def masked_log_softmax(scores: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(scores / temperature) over the valid entries."""
    return torch.log_softmax((scores / temperature).masked_fill(~mask, NEG), dim=-1)


def soft_cross_entropy(target: torch.Tensor, log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_i target_i log p_i."""
    return -(target * log_probs * mask).sum(-1).mean()


def kl_divergence(target: torch.Tensor, log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over rows of sum_i target_i (log target_i - log p_i), with 0 log 0 = 0."""
    log_t = torch.log(target.clamp(min=1e-30))
    terms = torch.where((target > 0) & mask, target * (log_t - log_probs), torch.zeros_like(target))
    return terms.sum(-1).mean()


# --------------------------------------------------------------------------- inference


def anchor_proposals(anchor: torch.Tensor, lengths: torch.Tensor, T: int, length_factors: list[float],
                     overlap_factors: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid-start mask [B,K,T], span lengths [B,K]) of spans around the anchor (ViGA's point expansion).

    Span length l_k = round(n * f_k); starts step by l - round(l * o) from
    the leftmost span that still holds the anchor; every span holds the
    anchor and lies inside the video. Lengths repeated for short videos
    are kept once.
    """
    dev = anchor.device
    n = lengths.to(torch.float32)[:, None]
    f = torch.tensor(length_factors, device=dev)[None, :]
    span = torch.round(n * f).long().clamp(min=1)
    span = torch.minimum(span, lengths[:, None])  # [B,K]
    lo = (anchor[:, None] - span + 1).clamp(min=0)
    hi = torch.minimum(anchor[:, None], lengths[:, None] - span)
    o = torch.tensor(overlap_factors, device=dev)
    step = span[..., None] - torch.round(span[..., None].to(torch.float32) * o).long()  # [B,K,O]
    s = torch.arange(T, device=dev)
    offset = s[None, None, :] - lo[..., None]  # [B,K,T]
    on_grid = ((offset[:, :, None, :] % step.clamp(min=1)[..., None]) == 0) & (step[..., None] > 0)
    valid = on_grid.any(2) & (offset >= 0) & (s[None, None, :] <= hi[..., None])
    first = torch.ones_like(span, dtype=torch.bool)
    for k in range(1, span.shape[1]):
        first[:, k] = ~(span[:, :k] == span[:, k : k + 1]).any(1)
    return valid & first[..., None], span


def span_features(clips: torch.Tensor, mask: torch.Tensor, anchor: torch.Tensor, starts: torch.Tensor,
                  ends: torch.Tensor, rows: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pooled features [C,D] of spans [start, end) that all hold their row's anchor."""
    if pooling == "mean":
        cs = torch.cat([torch.zeros_like(clips[:, :1]), (clips * mask[..., None]).cumsum(1)], 1)
        return (cs[rows, ends] - cs[rows, starts]) / (ends - starts).clamp(min=1)[:, None].to(clips.dtype)
    t = torch.arange(clips.shape[1], device=clips.device)[None, :]
    neg = torch.finfo(clips.dtype).min
    # Running maxima outward from the anchor: any anchored span is max(left part, right part).
    left = clips.masked_fill((t > anchor[:, None])[..., None] | ~mask[..., None], neg)
    left = torch.flip(torch.cummax(torch.flip(left, [1]), 1).values, [1])
    right = clips.masked_fill((t < anchor[:, None])[..., None] | ~mask[..., None], neg)
    right = torch.cummax(right, 1).values
    return torch.maximum(left[rows, starts], right[rows, ends - 1])


def span_contrast(sim: torch.Tensor, mask: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, rows: torch.Tensor,
                  margin: float) -> torch.Tensor:
    """Mean similarity inside [start, end) minus the mean over flanks of width margin * length on each side.

    A span whose flanks fall entirely outside the video scores 0.
    """
    cs = torch.cat([torch.zeros_like(sim[:, :1]), (sim * mask).cumsum(1)], 1)
    n = mask.sum(1)[rows]
    length = ends - starts
    width = torch.round(length.float() * margin).long().clamp(min=1)
    left, right = (starts - width).clamp(min=0), torch.minimum(ends + width, n)
    inner = (cs[rows, ends] - cs[rows, starts]) / length.clamp(min=1)
    flank = (cs[rows, starts] - cs[rows, left]) + (cs[rows, right] - cs[rows, ends])
    count = (starts - left) + (right - ends)
    return torch.where(count > 0, inner - flank / count.clamp(min=1), torch.zeros_like(inner))


# --------------------------------------------------------------------------- the shared model


class PointGroundingModel(GroundingModel):
    """Encoder + anchor-expansion decoding shared by the point-supervised models."""

    supervision = "point"
    Config = PointConfig

    def __init__(self, cfg: PointConfig, spec: InputSpec, gca: dict | None = None) -> None:
        super().__init__(cfg, spec)
        if cfg.dim % 2 or cfg.dim % cfg.num_heads:
            raise ValueError(f"dim {cfg.dim} must be even and divisible by num_heads {cfg.num_heads}")
        self.encoder = PointEncoder(cfg, spec, gca)

    def forward(self, batch: Batch) -> Output:
        """Encode, then the cosine of every clip with the sentence (S_i of Sec. 3.2.3)."""
        enc = self.encoder(batch)
        sim = F.cosine_similarity(enc["clips"], enc["sentence"][:, None, :], dim=-1)
        tensors = dict(enc, clip_sim=sim, query_attention=query_attention(enc["word_to_clip"], batch.word_mask))
        emb = {"clips": enc["clips"], "clip_mask": batch.video_mask, "sentence": enc["sentence"],
               "words": enc["words"], "word_mask": batch.word_mask}
        return Output(tensors=tensors, embeddings=emb)

    def point_target(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(glance clip index [B], Gaussian of Eq. 5 [B,T]) from the point label alone."""
        if batch.point is None:
            raise ValueError(f"{type(self).__name__} is point-supervised: the batch carries no point label")
        lengths = batch.video_mask.sum(1)
        tau = glance_index(batch.point, batch.duration, lengths)
        return tau, gaussian_weights(tau, lengths, batch.video_mask.shape[1], self.cfg.sigma)

    def anchors(self, out: Output, batch: Batch) -> torch.Tensor:
        """The clip that best matches the query: highest word-averaged attention or similarity."""
        mask = batch.video_mask
        source = self.cfg.global_on if self.cfg.anchor == "global" else self.cfg.anchor
        score = out["query_attention"] if source == "attention" else out["clip_sim"]
        return score.masked_fill(~mask, float("-inf")).argmax(1)

    def global_log_probs(self, out: Output, batch: Batch) -> torch.Tensor:
        """log p over the clips [B,T] that the Gaussian (global) loss compares with the glance Gaussian."""
        cfg, mask = self.cfg, batch.video_mask
        if cfg.global_on == "similarity":
            return masked_log_softmax(out["clip_sim"], mask, cfg.temperature)
        attn = out["query_attention"]
        if cfg.global_form == "logits":
            return masked_log_softmax(attn, mask, 1.0)
        # Dropout on the attention can zero an entry; the floor keeps its log finite.
        return torch.log(attn.clamp(min=1e-12)).masked_fill(~mask, NEG)

    @torch.no_grad()
    def decode(self, out: Output, batch: Batch, k: int = 5) -> list[list[Moment]]:
        """Expand the anchor into spans that hold it, score each, keep the top-k after NMS (seconds)."""
        from momentloc.decode import nms, topk_segments

        clips, mask = F.normalize(out["clips"].float(), dim=-1), batch.video_mask
        T = mask.shape[1]
        lengths = mask.sum(1)
        anchor = self.anchors(out, batch)
        valid, span = anchor_proposals(anchor, lengths, T, self.cfg.moment_length_factors, self.cfg.overlap_factors)
        rows, kk, starts = valid.nonzero(as_tuple=True)
        ends = starts + span[rows, kk]
        scores = torch.zeros(valid.shape, device=clips.device)
        scores[rows, kk, starts] = self._proposal_scores(out, clips, mask, anchor, starts, ends, rows)
        s = torch.arange(T, device=clips.device)[None, None, :].expand_as(valid)
        seg = torch.stack([s, s + span[..., None]], -1).float()
        seg = seg / lengths[:, None, None, None].float() * batch.duration.float()[:, None, None, None]
        seg, scores, valid = seg.flatten(1, 2), scores.flatten(1, 2), valid.flatten(1, 2)
        kept = [t.cpu().tolist() for t in nms(seg, scores, self.cfg.nms_threshold, k, valid)]
        # NMS may leave fewer than k; fill with the best suppressed spans so R@k sees k moments.
        best = [t.cpu().tolist() for t in topk_segments(seg, scores, k, valid)]
        return [self._moments(kept, best, b, k, d) for b, d in enumerate(batch.duration.tolist())]

    def _proposal_scores(self, out: Output, clips: torch.Tensor, mask: torch.Tensor, anchor: torch.Tensor,
                         starts: torch.Tensor, ends: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Score of each span [start, end) of row ``rows`` (see ``PointConfig.proposal_score``)."""
        if self.cfg.proposal_score == "contrast":
            return span_contrast(out["clip_sim"].float(), mask, starts, ends, rows, self.cfg.contrast_margin)
        feats = span_features(clips, mask, anchor, starts, ends, rows, self.cfg.pooling)
        sentence = F.normalize(out["sentence"].float(), dim=-1)[rows]
        if self.cfg.proposal_score == "dot":
            return (feats * sentence).sum(-1)
        return F.cosine_similarity(feats, sentence, dim=-1)

    @staticmethod
    def _moments(kept: list[list[Any]], best: list[list[Any]], b: int, k: int, duration: float) -> list[Moment]:
        """Kept moments of row ``b`` in seconds, then fillers not already kept (``kept``, ``best``: NMS and top-k results as lists)."""
        out: list[Moment] = []
        seen: set[tuple[float, float]] = set()
        for seg, score, ok in ((kept[0][b], kept[1][b], kept[2][b]), (best[0][b], best[1][b], best[2][b])):
            for (start, end), sc, good in zip(seg, score, ok):
                key = (round(start, 6), round(end, 6))
                if len(out) < k and good and key not in seen:
                    seen.add(key)
                    out.append(Moment(max(0.0, key[0]), min(duration, key[1]), float(sc)))
        return out
