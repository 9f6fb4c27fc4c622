"""FSAN (Wang et al., EMNLP 2021): fine-grained semantic alignment, candidate-free.

A transformer encodes the sentence; an Iterative Cross-modal Interaction
Module (cross-modal then inner-modal attention, 6 layers) mixes tokens and
clips; a token-by-clip Semantic Alignment Map P (cosines) scores every
segment (Eq. 8) without any proposal features; training uses a video-level
triplet loss against sentences of other videos (repeated tokens masked) and
the inner / outer losses on P weighted by the segment scores.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from momentloc.models.base import GroundingModel, InputSpec, ModelConfig, Output, once_per_video
from momentloc.models.fsan_scores import (
    best_score,
    excess_scores,
    inner_outer_losses,
    interval_sums,
    reweighted_scores,
    segment_scores,
)
from momentloc.models.weak_layers import (
    clip_bounds_to_seconds,
    margin_hinge,
    rank_segments,
    repeated_token_mask,
    sample_negatives,
    valid_lengths,
)
from momentloc.registry import register_model
from momentloc.types import Batch, Moment


class FSANConfig(ModelConfig):
    """FSAN hyper-parameters."""

    hidden: int = 512  # d_s = d_v
    align_dim: int = 512  # d_i of W^s, W^v (Eq. 5)
    heads: int = 8
    ffn: int = 2048
    text_layers: int = 2
    icim_layers: int = 6
    cross_modal: bool = True  # ICIM ablations (Table 4)
    inner_modal: bool = True
    dropout: float = 0.1
    max_words: int = 128  # sizes of the learnable positional encodings
    max_clips: int = 1024
    margin: float = 0.2  # delta of Eq. 6
    lambda_triplet: float = 1.0 / 3.0
    lambda_inner: float = 1.0 / 3.0
    lambda_outer: float = 1.0 / 3.0
    inner_loss: bool = True  # False / False: the "w/o loss on SAP" ablation
    outer_loss: bool = True
    # The response of an outside clip that L^o lowers: its weakest token (Eq. 11 as printed),
    # or the mean over the tokens, which one token pinned at -1 cannot meet (see docs).
    outer_response: Literal["min", "mean"] = "min"
    # Tokens shared by S and S- are masked on P- ("negative", Section 3.3), on both maps
    # ("both": the positive's score then also ignores them), or nowhere ("none").
    mask_repeated_tokens: Literal["negative", "both", "none"] = "negative"
    # Negatives of the triplet loss: another video's sentence on this video (S-, the paper),
    # this sentence on another video ("video"), or both hinges averaged.
    negatives: Literal["sentence", "video", "both"] = "sentence"
    detach_weights: bool = True  # SC_{s,e} as a confidence weight, not a path for gradients
    # Weights of L^i and L^o over the segments: SC_{s,e} as printed ("sc", can be negative, so
    # L^o is then unbounded below), max(SC, 0) normalised to sum 1 ("nonneg"), or a softmax of
    # SC / sap_temperature over the valid segments ("softmax"). The last two are not in the paper.
    sap_weights: Literal["sc", "nonneg", "softmax"] = "sc"
    sap_temperature: float = Field(0.1, gt=0.0)
    # Training steps with the triplet alone before L^i and L^o join (not in the paper; 0: from
    # the start). Counted per model instance: a resumed run counts again from 0.
    sap_warmup_steps: int = Field(0, ge=0)
    # The token reduction of Eq. 8's second term: the weakest response of each outside clip
    # (as printed) or its mean over the tokens (not in the paper).
    score_outside: Literal["min", "mean"] = "min"
    whole_video: bool = False  # also score the whole video (Eq. 8's second term then 0)
    # Gradients of S(V, S) (Eq. 7, in the triplet) through Eq. 8's second term. False: that
    # term still picks the best segment, but only L^o trains the outside clips (see docs).
    outside_grad: bool = True
    nms_iou: float = 0.5
    # Inference: "eq8" ranks segments by SC_{s,e} (the paper); "excess" ranks them by the sum over
    # their clips of the token-mean response minus a threshold between the video's mean response
    # (excess_threshold 0) and its peak (1), so the top segment is the run of clips that stand out
    # (not in the paper: Eq. 8's maximum is much shorter than the moment here, see docs).
    # "reweighted": Eq. 8 with the token mean in its second term, times f (1 - f), f = (e-s+1)/N_v
    # (not in the paper); it equals "excess" at excess_threshold 0 (see docs).
    decode: Literal["eq8", "reweighted", "excess"] = "eq8"
    excess_threshold: float = Field(0.0, ge=0.0, lt=1.0)
    # "sap": the alignment-based grounding module (Eqs. 7-8); "mlp": the Table 4 ablation "w/o
    # grounding module", attention pooling of V'' over each segment and a three-layer MLP score.
    grounding: Literal["sap", "mlp"] = "sap"
    # "scored": each ranked segment where the model puts it. "random": a control, not a reading of
    # the paper: each ranked segment moved to a uniformly random place in its video, its length
    # and score kept, so it keeps what the model learned about lengths and loses where.
    place: Literal["scored", "random"] = "scored"

    @field_validator("hidden", "align_dim", "heads", "ffn", "max_words", "max_clips")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v


class _AttentionBlock(nn.Module):
    """x <- LN(MA(x, y) + x); x <- LN(FFN(x) + x) (Eqs. 3-4); y = x gives the inner-modal block."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
        """Attend x [B,N,d] over y [B,M,d] (keys where y_mask)."""
        a = self.attn(x, y, y, key_padding_mask=~y_mask, need_weights=False)[0]
        x = self.ln1(x + self.drop(a))
        return self.ln2(x + self.drop(self.ffn(x)))


class ICIM(nn.Module):
    """Iterative Cross-modal Interaction Module: per layer cross-modal then inner-modal attention."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float, layers: int,
                 cross_modal: bool = True, inner_modal: bool = True) -> None:
        super().__init__()

        def blocks(on: bool) -> nn.ModuleList:
            return nn.ModuleList(_AttentionBlock(d, heads, ffn, dropout) for _ in range(layers if on else 0))

        self.cross_s, self.cross_v = blocks(cross_modal), blocks(cross_modal)
        self.inner_s, self.inner_v = blocks(inner_modal), blocks(inner_modal)
        self.layers = layers

    def forward(self, s: torch.Tensor, s_mask: torch.Tensor, v: torch.Tensor,
                v_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """S'', V'' after every layer."""
        for i in range(self.layers):
            if len(self.cross_s):
                # Both directions read the layer's inputs: S' = f(S, V), V' = f(V, S).
                s, v = self.cross_s[i](s, v, v_mask), self.cross_v[i](v, s, s_mask)
            if len(self.inner_s):
                s, v = self.inner_s[i](s, s, s_mask), self.inner_v[i](v, v, v_mask)
        return s, v


class SegmentMLP(nn.Module):
    """Table 4's "w/o grounding module": attention pooling of V'' over each segment, three-layer MLP."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.attn = nn.Linear(d, 1)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))

    def forward(self, v: torch.Tensor, clip_mask: torch.Tensor) -> torch.Tensor:
        """Scores of every segment [B,T,T] (entry [s,e]) from clip features v [B,T,d]."""
        a = self.attn(v).squeeze(-1).masked_fill(~clip_mask, float("-inf"))
        w = torch.exp(a - a.max(1, keepdim=True).values)  # 0 on padded clips
        num = interval_sums((w[:, :, None] * v).transpose(1, 2))  # [B,d,T,T]
        den = interval_sums(w)[:, None].clamp(min=1e-12)
        return self.mlp((num / den).permute(0, 2, 3, 1)).squeeze(-1)


@register_model("fsan")
class FSAN(GroundingModel):
    """Fine-grained Semantic Alignment Network, weakly supervised."""

    supervision = "weak"
    Config = FSANConfig

    def __init__(self, cfg: FSANConfig, spec: InputSpec) -> None:
        super().__init__(cfg, spec)
        self.cfg: FSANConfig = cfg
        if cfg.hidden % cfg.heads:
            raise ValueError(f"fsan: hidden ({cfg.hidden}) must be divisible by heads ({cfg.heads})")
        if spec.num_clips is not None and spec.num_clips > cfg.max_clips:
            raise ValueError(f"fsan: num_clips {spec.num_clips} exceeds max_clips {cfg.max_clips}")
        d = cfg.hidden
        self.word_fc = nn.Linear(spec.text_dim, d)
        self.video_fc = nn.Linear(spec.video_dim, d)
        self.text_encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, cfg.heads, cfg.ffn, cfg.dropout, batch_first=True),
            num_layers=cfg.text_layers, enable_nested_tensor=False,
        ) if cfg.text_layers > 0 else None
        self.word_pos = nn.Parameter(torch.zeros(cfg.max_words, d))
        self.clip_pos = nn.Parameter(torch.zeros(cfg.max_clips, d))
        nn.init.normal_(self.word_pos, std=0.02)
        nn.init.normal_(self.clip_pos, std=0.02)
        self.icim = ICIM(d, cfg.heads, cfg.ffn, cfg.dropout, cfg.icim_layers, cfg.cross_modal,
                         cfg.inner_modal)
        self.w_s = nn.Linear(d, cfg.align_dim, bias=False)
        self.w_v = nn.Linear(d, cfg.align_dim, bias=False)
        self.segment_mlp = SegmentMLP(d) if cfg.grounding == "mlp" else None
        self._train_steps = 0  # for sap_warmup_steps

    def encode_text(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Token features with positions, before interaction: [B,L,d], mask [B,L]."""
        mask = batch.word_mask.clone()
        mask[:, 0] |= ~mask.any(1)  # an empty sentence keeps one token: attention needs a key
        if mask.shape[1] > self.cfg.max_words:
            raise ValueError(f"fsan: {mask.shape[1]} words exceed max_words {self.cfg.max_words}")
        s = self.word_fc(batch.words) + self.word_pos[: mask.shape[1]]
        if self.text_encoder is not None:
            s = self.text_encoder(s, src_key_padding_mask=~mask)
        return s, mask

    def encode_video(self, video: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """Clip features with positions: [B,T,d]."""
        if video.shape[1] > self.cfg.max_clips:
            raise ValueError(f"fsan: {video.shape[1]} clips exceed max_clips {self.cfg.max_clips}")
        return self.video_fc(video) + self.clip_pos[: video.shape[1]]

    def alignment(self, s: torch.Tensor, s_mask: torch.Tensor, v: torch.Tensor,
                  v_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ICIM then the Semantic Alignment Map P [B,L,T] (Eq. 5) and the final S'', V''."""
        s2, v2 = self.icim(s, s_mask, v, v_mask)
        p = torch.einsum("bli,bti->blt", F.normalize(self.w_s(s2), dim=-1),
                         F.normalize(self.w_v(v2), dim=-1))
        valid = s_mask[:, :, None] & v_mask[:, None, :]
        return p.masked_fill(~valid, 0.0), s2, v2

    def forward(self, batch: Batch) -> Output:
        """Alignment map and candidate-free scores of every segment."""
        s, s_mask = self.encode_text(batch)
        v, v_mask = once_per_video(self.encode_video, batch, self.training), batch.video_mask
        p, s2, v2 = self.alignment(s, s_mask, v, v_mask)
        sc, valid = self._segment_scores(p, s_mask, v_mask)
        n_valid = valid_lengths(v_mask)
        t = v_mask.shape[1]
        idx = torch.arange(t, device=p.device)
        start = idx.view(1, t, 1).expand(p.shape[0], t, t)
        segments = clip_bounds_to_seconds(start, (idx + 1).view(1, 1, t).expand_as(start), n_valid,
                                          batch.duration)
        grounded = sc if self.segment_mlp is None else self.segment_mlp(v2, v_mask)
        match = best_score(grounded, valid)  # Eq. 7
        tensors = {
            "alignment_map": p, "segment_scores": sc, "segment_valid": valid,
            "segments": segments, "match_score": match, "grounding_scores": grounded,
            "text_in": s, "text_mask": s_mask, "video_in": v,
        }
        embeddings = {"clips": v2, "clip_mask": v_mask, "words": s2, "word_mask": s_mask,
                      "sentence": _masked_mean(s2, s_mask)}
        return Output(tensors=tensors, embeddings=embeddings)

    def _sentence_negative(self, out: Output, batch: Batch, neg: torch.Tensor,
                           ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """S(V, S) and S(V, S-) (Eq. 7) with repeated tokens masked (Section 3.3), and validity."""
        t = out.tensors
        p_neg, _, v_neg = self.alignment(t["text_in"][neg], t["text_mask"][neg], t["video_in"],
                                         batch.video_mask)
        tok_pos, tok_neg = t["text_mask"], t["text_mask"][neg]
        mode = self.cfg.mask_repeated_tokens
        if mode != "none":
            tok_neg = repeated_token_mask(batch.word_ids, tok_pos, batch.word_ids[neg], tok_neg)
        if mode == "both":
            tok_pos = repeated_token_mask(batch.word_ids[neg], t["text_mask"][neg], batch.word_ids, tok_pos)
        ok = ok & tok_neg.any(1) & tok_pos.any(1)
        pos = out["match_score"] if mode != "both" or self.segment_mlp is not None else \
            self._best_segment(out["alignment_map"], tok_pos, batch.video_mask)
        return pos, self._best_segment(p_neg, tok_neg, batch.video_mask, v_neg), ok

    def _segment_scores(self, p: torch.Tensor, tok_mask: torch.Tensor,
                        clip_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SC_{s,e} (Eq. 8) with this config's readings, and valid."""
        cfg = self.cfg
        return segment_scores(p, tok_mask, clip_mask, cfg.whole_video, cfg.outside_grad, cfg.score_outside)

    def _best_segment(self, p: torch.Tensor, tok_mask: torch.Tensor, clip_mask: torch.Tensor,
                      v2: torch.Tensor | None = None) -> torch.Tensor:
        """S(V, S) on a map (or from V'' with ``grounding: mlp``); a row with no token left keeps
        its first (the caller drops it)."""
        tok = tok_mask.clone()
        tok[:, 0] |= ~tok.any(1)
        sc, valid = self._segment_scores(p, tok, clip_mask)
        if self.segment_mlp is not None and v2 is not None:
            sc = self.segment_mlp(v2, clip_mask)
        return best_score(sc, valid)

    def _video_negative(self, out: Output, batch: Batch, neg: torch.Tensor) -> torch.Tensor:
        """S(V-, S): the sentence against another video of the batch."""
        t = out.tensors
        v_mask = batch.video_mask[neg]
        p_neg, _, v_neg = self.alignment(t["text_in"], t["text_mask"], t["video_in"][neg], v_mask)
        return self._best_segment(p_neg, t["text_mask"], v_mask, v_neg)

    def loss(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """lambda1 L^t + lambda2 L^i + lambda3 L^o (Eq. 13); L^t averages the chosen hinges."""
        cfg = self.cfg
        neg, ok = sample_negatives(batch.video_group, 1)
        neg = neg[:, 0]
        terms: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (S+, S-, valid)
        if cfg.negatives in ("sentence", "both"):
            terms.append(self._sentence_negative(out, batch, neg, ok))
        if cfg.negatives in ("video", "both"):
            terms.append((out["match_score"], self._video_negative(out, batch, neg), ok))
        triplet = torch.stack([margin_hinge(p, n, v, cfg.margin) for p, n, v in terms]).mean()
        inner, outer = inner_outer_losses(out["alignment_map"], out["text_mask"], batch.video_mask,
                                          out["segment_scores"], out["segment_valid"],
                                          cfg.detach_weights, cfg.outer_response, cfg.sap_weights,
                                          cfg.sap_temperature)
        sap_on = self._train_steps >= cfg.sap_warmup_steps
        if self.training and torch.is_grad_enabled():
            self._train_steps += 1
        total = cfg.lambda_triplet * triplet
        if cfg.inner_loss and sap_on:
            total = total + cfg.lambda_inner * inner
        if cfg.outer_loss and sap_on:
            total = total + cfg.lambda_outer * outer
        score_neg = torch.stack([_masked_average(n.detach(), v) for _, n, v in terms]).mean()
        return {"total": total, "triplet": triplet.detach(), "inner": inner.detach(),
                "outer": outer.detach(), "score_pos": out["match_score"].detach().mean(),
                "score_neg": score_neg}

    def decode(self, out: Output, batch: Batch, k: int = 5) -> list[list[Moment]]:
        """Segments ranked by SC_{s,e} (``decode``: or reweighted, or by excess response), NMS, seconds.

        With ``grounding: mlp`` the MLP's scores rank the segments whatever ``decode`` says.
        """
        b = out["segments"].shape[0]
        if self.segment_mlp is not None:
            scores, valid = out["grounding_scores"], out["segment_valid"]
        elif self.cfg.decode == "reweighted":
            scores, valid = reweighted_scores(out["alignment_map"], out["text_mask"], batch.video_mask)
        elif self.cfg.decode == "excess":
            scores, valid = excess_scores(out["alignment_map"], out["text_mask"], batch.video_mask,
                                          self.cfg.excess_threshold)
        else:
            scores, valid = out["segment_scores"], out["segment_valid"]
        ranked = rank_segments(out["segments"].reshape(b, -1, 2), scores.reshape(b, -1),
                               valid.reshape(b, -1), batch.duration, k, self.cfg.nms_iou)
        return ranked if self.cfg.place == "scored" else _moved_at_random(ranked, batch.duration)


def _moved_at_random(ranked: list[list[Moment]], duration: torch.Tensor) -> list[list[Moment]]:
    """The control of ``place: random``: each moment at a uniformly random start, same length and score."""
    draws = torch.rand(len(ranked), max((len(r) for r in ranked), default=0)).tolist()
    moved = []
    for row, us, d in zip(ranked, draws, duration.tolist()):
        starts = [u * (d - (m.end - m.start)) for m, u in zip(row, us)]
        moved.append([Moment(s, s + m.end - m.start, m.score) for m, s in zip(row, starts)])
    return moved


def _masked_average(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of x [B] over the valid rows (0 with a gradient path when none is valid)."""
    x = torch.where(valid, x, torch.zeros_like(x))
    return x.sum() / valid.sum().clamp(min=1).to(x.dtype)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)
