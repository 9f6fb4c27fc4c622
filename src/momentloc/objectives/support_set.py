"""Sscs: support-set based cross-supervision (Ding et al., ICCV 2021).

A training-only branch over the embeddings a model exposes: clip embeddings X_i
and sentence embeddings Y_i are projected into one space (X = Psi(F), Y = Phi(G)),
each sentence attends over its support set (all clips of its video) to give
w_i = sum_t a_t x_t (Eqs. 4-5), and two objectives pull matching pairs together:
an InfoNCE over the batch (Eq. 6) and a caption likelihood p(L_i | w_i) (Eq. 7).
The ground-truth-clip variant of Sec. 3.3.2 (Eqs. 2-3) and the support-set
ablations of Sec. 3.4 are options.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from momentloc.errors import ConfigError
from momentloc.models.base import GroundingModel, Output
from momentloc.objectives.base import Objective, ObjectiveConfig
from momentloc.registry import register_objective
from momentloc.types import Batch

NEG = -1e4  # masked logit: exp() underflows to 0 yet stays finite in half precision


class SscsConfig(ObjectiveConfig):
    """Sscs parameters; defaults are the paper's Charades-STA setting (Sec. 4.2)."""

    temperature: float = Field(0.1, gt=0.0, description="tau in Eqs. 2, 4, 6")
    contrast_weight: float = Field(0.1, ge=0.0, description="lambda_1 of Eq. 1")
    caption_weight: float = Field(0.1, ge=0.0, description="lambda_2 of Eq. 1")
    mode: Literal["support_set", "gt_clip"] = "support_set"
    # Sec. 3.4: which clips form the support set, and how it is pooled into w_i.
    support: Literal["video", "gt", "non_gt"] = "video"
    pooling: Literal["cross_attention", "self_attention", "max", "mean"] = "cross_attention"
    dim: Optional[int] = Field(None, ge=1, description="shared space width; default: the model's clip width")
    caption_hidden: Optional[int] = Field(None, ge=1, description="caption GRU width; default: dim")
    # Eqs. 2 and 6 are printed as sums over the batch, but Eq. 2 is "the softmax version of MIL-NCE [28]", whose
    # release averages over the batch; the sum at the paper's batch (256) would weigh the contrast B times against
    # 2D-TAN's per-cell mean (docs/methods/sscs.md measures the gradients). "sum" is the literal reading.
    contrast_reduction: Literal["sum", "mean"] = "mean"
    # Eqs. 3 and 7 average -log p(l_i | w_i) over the batch; "sentence" sums the words of each sentence,
    # "token" averages them (the usual captioning loss).
    caption_reduction: Literal["sentence", "token"] = "sentence"
    # Eq. 6's negatives (w_i, Y_j): w_i is video i's support set attended by its own sentence Y_i (Eqs. 4-5), as
    # printed; "pair_attention" attends video i's support set with each sentence Y_j for the pair (i, j) instead.
    negatives: Literal["positive_attention", "pair_attention"] = "positive_attention"
    # Which embeddings X_i, Y_i are: "encoder" maps the model's clip and sentence encodings through Sscs's own
    # Psi, Phi; "fusion" takes the two sides of the model's own fusion (2D-TAN: its projected clips and sentence,
    # whose Hadamard product it scores; Sec. 3.3.1 "they first fuse the visual and textual embeddings X_i and
    # Y_i") with Psi = Phi = identity.
    space: Literal["encoder", "fusion"] = "encoder"
    clip_dim: Optional[int] = Field(None, ge=1, description="width of embeddings['clips'] if the model does not say")
    sentence_dim: Optional[int] = Field(None, ge=1, description="width of embeddings['sentence'] if the model does not say")


def gt_clip_mask(clip_mask: torch.Tensor, windows: torch.Tensor, duration: torch.Tensor) -> torch.Tensor:
    """[B,T] bool: valid clips whose centre lies in the window, plus the clip holding the window's centre."""
    n = clip_mask.sum(1).clamp(min=1).to(windows.dtype)  # valid clips (a prefix)
    frac = (windows / duration[:, None].clamp(min=1e-6)).clamp(0.0, 1.0)
    t = torch.arange(clip_mask.shape[1], device=clip_mask.device, dtype=windows.dtype)
    centre = (t[None, :] + 0.5) / n[:, None]
    inside = (centre >= frac[:, :1]) & (centre <= frac[:, 1:])
    mid = ((frac[:, 0] + frac[:, 1]) / 2 * n).floor().clamp(max=n - 1).long()
    inside[torch.arange(len(mid)), mid] = True
    return inside & clip_mask


def _masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.masked_fill(~mask, NEG), dim=-1) * mask


def pool_support(
    x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, tau: float, pooling: str = "cross_attention"
) -> torch.Tensor:
    """w_i from the support-set clips x [B,T,D] (mask ``support`` [B,T]) and sentences y [B,D].

    cross_attention: a_t = softmax_t(cos(x_t, y) / tau), w = sum a_t x_t (Eqs. 4-5);
    self_attention: z_t = sum_t' cos(x_t, x_t') / tau, a = softmax(z) (Eq. 8);
    max / mean: pooling over the support clips.
    """
    if pooling == "max":
        return x.masked_fill(~support[..., None], float("-inf")).amax(1)
    if pooling == "mean":
        w = support.to(x.dtype)
        return (x * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1)
    xn = F.normalize(x, dim=-1)
    if pooling == "cross_attention":
        logits = torch.einsum("btd,bd->bt", xn, F.normalize(y, dim=-1)) / tau
    elif pooling == "self_attention":
        q = torch.einsum("btd,bsd->bts", xn, xn) / tau
        logits = (q * support[:, None, :].to(q.dtype)).sum(-1)
    else:
        raise ValueError(f"unknown pooling {pooling!r}")
    a = _masked_softmax(logits, support)
    return torch.einsum("bt,btd->bd", a, x)


def support_contrastive_loss(w: torch.Tensor, y: torch.Tensor, tau: float, reduction: str = "sum") -> torch.Tensor:
    """Eq. 6: -sum_i log( e^{w_i.y_i/tau} / sum_j e^{w_i.y_j/tau} ) with L2-normalised w, y."""
    logits = F.normalize(w, dim=-1) @ F.normalize(y, dim=-1).t() / tau
    target = torch.arange(len(w), device=w.device)
    return F.cross_entropy(logits, target, reduction=reduction)


def pair_attention_logits(x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, tau: float) -> torch.Tensor:
    """[B,B] logits cos(w_ij, y_j) / tau, where w_ij is video i's support set (x [B,T,D], mask [B,T]) attended
    by sentence j (Eqs. 4-5 for every pair): the ``negatives: pair_attention`` reading of Eq. 6."""
    yn = F.normalize(y, dim=-1)
    att = torch.einsum("itd,jd->ijt", F.normalize(x, dim=-1), yn) / tau  # [B,B,T]
    a = _masked_softmax(att, support[:, None, :])
    w = torch.einsum("ijt,itd->ijd", a, x)  # [B,B,D]
    return (F.normalize(w, dim=-1) * yn[None]).sum(-1) / tau


def gt_clip_contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    positive: torch.Tensor,
    clip_mask: torch.Tensor,
    group: torch.Tensor,
    tau: float,
    reduction: str = "sum",
) -> torch.Tensor:
    """Eq. 2 (MIL-NCE, softmax form): for sentence i the GT clips of its video are positives,
    its other clips and every clip of the other videos in the batch are negatives."""
    sims = torch.einsum("id,jtd->ijt", F.normalize(y, dim=-1), F.normalize(x, dim=-1)) / tau  # [B,B,T]
    eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
    other_video = (group[:, None] != group[None, :])[..., None] & clip_mask[None]  # [B,B,T]
    own = eye[..., None] & clip_mask[None]
    pos = eye[..., None] & positive[None]
    everything = (own | other_video).flatten(1)
    num = torch.logsumexp(sims.flatten(1).masked_fill(~pos.flatten(1), NEG), dim=1)
    den = torch.logsumexp(sims.flatten(1).masked_fill(~everything, NEG), dim=1)
    loss = den - num
    return loss.sum() if reduction == "sum" else loss.mean()


def caption_nll(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, reduction: str = "sentence") -> torch.Tensor:
    """Eqs. 3 / 7: -log p(sentence | w) = -sum_t log p(word_t | w, words_<t), averaged over the batch.

    ``reduction="token"`` divides each sentence's sum by its length instead.
    """
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none") * mask.to(logits.dtype)  # [B,L]
    per_sentence = nll.sum(1)
    if reduction == "token":
        per_sentence = per_sentence / mask.sum(1).clamp(min=1)
    return per_sentence.mean()


class CaptionDecoder(nn.Module):
    """A GRU language model conditioned on w (initial state and every input), teacher-forced."""

    def __init__(self, cond_dim: int, hidden: int, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size + 1, hidden)  # the extra row is <bos>
        self.init = nn.Linear(cond_dim, hidden)
        self.gru = nn.GRU(hidden + cond_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, cond: torch.Tensor, word_ids: torch.Tensor) -> torch.Tensor:
        """cond [B,D], word_ids [B,L] -> next-word logits [B,L,V] (step t predicts word t)."""
        B, L = word_ids.shape
        bos = word_ids.new_full((B, 1), self.vocab_size)
        inputs = self.embed(torch.cat([bos, word_ids[:, :-1]], 1))
        inputs = torch.cat([inputs, cond[:, None, :].expand(B, L, -1)], -1)
        states, _ = self.gru(inputs, torch.tanh(self.init(cond))[None])
        return self.out(states)


def _first_attr(obj: object, names: tuple[str, ...]) -> Optional[int]:
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, int):
            return value
    return None


def _embedding_widths(cfg: SscsConfig, model: GroundingModel) -> tuple[int, int]:
    """Widths of the model's clip and sentence embeddings: config, ``model.embedding_dims()``,
    else the usual hidden-size fields of the model's config."""
    dims = model.embedding_dims() if hasattr(model, "embedding_dims") else {}
    mcfg = getattr(model, "cfg", None)
    clip = cfg.clip_dim or dims.get("clips") or _first_attr(mcfg, ("hidden_size", "hidden_dim", "hidden"))
    sent = cfg.sentence_dim or dims.get("sentence") or _first_attr(
        mcfg, ("text_hidden_dim", "hidden_size", "hidden_dim", "hidden")
    )
    if clip is None or sent is None:
        raise ConfigError(
            f"sscs: model {type(model).__name__} does not say its embedding widths; set clip_dim and sentence_dim"
        )
    return int(clip), int(sent)


@register_objective("sscs")
class SupportSetCrossSupervision(Objective):
    """L = lambda_1 L_contrast + lambda_2 L_caption over ``clips`` / ``clip_mask`` / ``sentence``."""

    Config = SscsConfig
    needs = ("clips", "clip_mask", "sentence")

    def __init__(self, cfg: SscsConfig, model: GroundingModel) -> None:
        super().__init__(cfg, model)
        self.keys = ("clips", "sentence") if cfg.space == "encoder" else ("fusion_clips", "fusion_sentence")
        self.psi: nn.Module
        self.phi: nn.Module
        if cfg.space == "fusion":
            dims = model.embedding_dims() if hasattr(model, "embedding_dims") else {}
            if dims.get("fusion_clips") is None or dims.get("fusion_clips") != dims.get("fusion_sentence"):
                raise ConfigError(f"sscs: space=fusion needs a model that exposes fusion_clips / fusion_sentence "
                                  f"of one width ({type(model).__name__} does not)")
            dim = int(dims["fusion_clips"])
            self.psi, self.phi = nn.Identity(), nn.Identity()
        else:
            clip_dim, sent_dim = _embedding_widths(cfg, model)
            dim = cfg.dim or clip_dim
            self.psi = nn.Linear(clip_dim, dim)  # X = Psi(F)
            self.phi = nn.Linear(sent_dim, dim)  # Y = Phi(G)
        self.decoder: Optional[CaptionDecoder] = None
        self.gt_head: Optional[nn.Linear] = None
        if cfg.caption_weight > 0:
            vocab = int(getattr(model.spec, "vocab_size", 0) or 0)
            if vocab < 3:
                raise ConfigError(f"sscs: the caption objective needs a word vocabulary (vocab_size={vocab})")
            self.decoder = CaptionDecoder(dim, cfg.caption_hidden or dim, vocab)
            # Eq. 3's Phi': GT clips -> w_i (the support-set form feeds w_i directly, Eq. 7).
            self.gt_head = nn.Linear(dim, dim) if cfg.mode == "gt_clip" else None
        self._ids_checked = False

    def _positives(self, clip_mask: torch.Tensor, batch: Batch) -> torch.Tensor:
        if batch.windows is None:
            raise ValueError(f"sscs: mode={self.cfg.mode!r} / support={self.cfg.support!r} needs ground-truth windows")
        return gt_clip_mask(clip_mask, batch.windows, batch.duration)

    def _support(self, clip_mask: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.cfg.support == "video":
            return clip_mask
        gt = self._positives(clip_mask, batch)
        chosen = gt if self.cfg.support == "gt" else clip_mask & ~gt
        # A Non-GT support set can be empty when the moment spans the video.
        empty = ~chosen.any(1, keepdim=True)
        return torch.where(empty, clip_mask, chosen)

    def forward(self, out: Output, batch: Batch) -> dict[str, torch.Tensor]:
        """The weighted sum of the contrastive and caption objectives (key ``total``)."""
        contrast, caption = self.terms(out, batch)
        total = self.cfg.contrast_weight * contrast + self.cfg.caption_weight * caption
        return {"total": total, "contrast": contrast.detach(), "caption": caption.detach()}

    def terms(self, out: Output, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The unweighted L_contrast and L_caption (the caption is 0 when its weight is 0)."""
        emb = out.embeddings
        missing = [k for k in (self.keys[0], "clip_mask", self.keys[1]) if k not in emb]
        if missing:
            raise KeyError(f"sscs needs Output.embeddings {missing}; this model does not expose them")
        x = self.psi(emb[self.keys[0]])
        y = self.phi(emb[self.keys[1]])
        clip_mask = emb["clip_mask"].bool()
        tau = self.cfg.temperature
        if self.cfg.mode == "gt_clip":
            pos = self._positives(clip_mask, batch)
            contrast = gt_clip_contrastive_loss(
                x, y, pos, clip_mask, batch.video_group, tau, self.cfg.contrast_reduction
            )
            cond = pool_support(x, y, pos, tau, "mean")
            cond = self.gt_head(cond) if self.gt_head is not None else cond
        else:
            support = self._support(clip_mask, batch)
            cond = pool_support(x, y, support, tau, self.cfg.pooling)
            if self.cfg.negatives == "pair_attention" and self.cfg.pooling == "cross_attention":
                logits = pair_attention_logits(x, y, support, tau)
                target = torch.arange(len(logits), device=logits.device)
                contrast = F.cross_entropy(logits, target, reduction=self.cfg.contrast_reduction)
            else:  # the other poolings do not read the sentence: w_i is the same for every pair
                contrast = support_contrastive_loss(cond, y, tau, self.cfg.contrast_reduction)
        caption = contrast.new_zeros(())
        if self.decoder is not None:
            ids = batch.word_ids
            # Checked on the first batch only: reading the ids back waits for the device, and every batch
            # comes from the same vocabulary (the one the model was built for).
            if not self._ids_checked:
                if int(ids.max()) >= self.decoder.vocab_size:
                    raise ValueError(f"sscs: word id {int(ids.max())} outside the vocabulary ({self.decoder.vocab_size})")
                self._ids_checked = True
            logits = self.decoder(cond, ids)
            caption = caption_nll(logits, ids, batch.word_mask.bool(), self.cfg.caption_reduction)
        return contrast, caption
