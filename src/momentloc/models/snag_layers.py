"""Building blocks of the SnAG-style grounder: local attention, pyramid, fusion, heads, losses."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from momentloc.metrics.iou import temporal_iou


def sinusoid_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal position codes [length, dim] for any length (no table, so no length cap)."""
    half = dim // 2
    freqs = 10000.0 ** (-torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * freqs[None, :]
    pe = torch.cat([angles.sin(), angles.cos()], dim=1)
    if pe.shape[1] < dim:
        pe = F.pad(pe, (0, dim - pe.shape[1]))
    # Small scale, as in SnAG, so the codes do not swamp the projected features.
    return pe / math.sqrt(dim)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop a whole residual branch per sample."""
    if p <= 0.0 or not training:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


class LayerScale(nn.Module):
    """Learnable per-channel scale of a residual branch (the alpha of Eqs. 2, 3, 7), with drop-path."""

    def __init__(self, dim: int, init: float, drop: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), float(init)))
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale, then (in training) randomly drop the branch."""
        return drop_path(x * self.scale, self.drop, self.training)


class MaskedConv(nn.Module):
    """1D convolution over [B,T,C] that ignores padded steps; ``stride`` 2 halves T (ceil)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Convolve the valid prefix; returns features and the (possibly downsampled) mask."""
        y = self.conv((x * mask[..., None]).transpose(1, 2)).transpose(1, 2)
        if self.stride > 1:
            mask = mask[:, :: self.stride]
        return y * mask[..., None], mask


class FeedForward(nn.Sequential):
    """Transformer MLP: Linear -> GELU -> Linear with dropout."""

    def __init__(self, dim: int, expansion: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(dim, dim * expansion), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(dim * expansion, dim), nn.Dropout(dropout),
        )


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Each step attends to keys within ``radius`` steps; q,k,v [N,H,T,d], key_mask [N,T].

    Blocked: queries in blocks of c = 2*radius see c + 2*radius keys, so time and
    memory are O(T * radius), never O(T^2).
    """
    n, h, t, d = q.shape
    c = max(2 * radius, 1)
    width = c + 2 * radius
    blocks = -(-t // c)
    pad_t = blocks * c - t
    qb = F.pad(q, (0, 0, 0, pad_t)).view(n, h, blocks, c, d)
    kp = F.pad(k, (0, 0, radius, pad_t + radius))
    vp = F.pad(v, (0, 0, radius, pad_t + radius))
    mp = F.pad(key_mask, (radius, pad_t + radius), value=False)
    kb = kp.unfold(2, width, c)  # [N,H,blocks,d,width]
    vb = vp.unfold(2, width, c)
    mb = mp.unfold(1, width, c)  # [N,blocks,width]
    scores = torch.einsum("nhbqd,nhbdk->nhbqk", qb, kb) / math.sqrt(d)
    rel = torch.arange(width, device=q.device)[None, :] - torch.arange(c, device=q.device)[:, None]
    band = (rel >= 0) & (rel <= 2 * radius)  # key j of block sits at offset j - radius from block start
    allowed = band[None, None] & mb[:, :, None, :]
    scores = scores.masked_fill(~allowed[:, None], torch.finfo(scores.dtype).min)
    attn = scores.softmax(dim=-1) * allowed[:, None]
    out = torch.einsum("nhbqk,nhbdk->nhbqd", attn, vb)
    return out.reshape(n, h, blocks * c, d)[:, :, :t]


class LocalSelfAttention(nn.Module):
    """Multi-head self-attention restricted to a window of ``window`` steps (LocalMSA)."""

    def __init__(self, dim: int, heads: int, window: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads, self.radius = heads, window // 2
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B,T,D] -> [B,T,D]; padded steps are neither attended to nor kept."""
        b, t, dim = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = local_attention(q, k, v, mask, self.radius)
        out = out.transpose(1, 2).reshape(b, t, dim)
        return self.drop(self.proj(out)) * mask[..., None]


class GlobalAttention(nn.Module):
    """Multi-head attention of queries [B,Tq,D] over keys [B,Tk,Dk] with a key mask."""

    def __init__(
        self, dim: int, heads: int, dropout: float, kv_dim: Optional[int] = None, out_dim: Optional[int] = None
    ) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim or dim, 2 * dim)
        self.proj = nn.Linear(dim, out_dim or dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor) -> torch.Tensor:
        """Attend from ``x`` to the valid steps of ``ctx``."""
        b, tq, dim = x.shape
        hd = dim // self.heads
        q = self.q(x).view(b, tq, self.heads, hd).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=ctx_mask[:, None, None, :])
        return self.drop(self.proj(out.transpose(1, 2).reshape(b, tq, dim)))


class EncoderBlock(nn.Module):
    """Pre-LN transformer layer (Eqs. 2-3): local window attention when ``window`` > 0, else global."""

    def __init__(self, dim: int, heads: int, window: int, dropout: float, path_drop: float, ls_init: float) -> None:
        super().__init__()
        self.local = window > 0
        self.attn = LocalSelfAttention(dim, heads, window, dropout) if self.local else GlobalAttention(dim, heads, dropout)
        self.ln_attn, self.ln_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, 4, dropout)
        self.ls_attn = LayerScale(dim, ls_init, path_drop)
        self.ls_mlp = LayerScale(dim, ls_init, path_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One attention + MLP step; padded steps stay zero."""
        h = self.ln_attn(x)
        h = self.attn(h, mask) if self.local else self.attn(h, h, mask)
        x = (x + self.ls_attn(h)) * mask[..., None]
        return (x + self.ls_mlp(self.mlp(self.ln_mlp(x)))) * mask[..., None]


def masked_max_pool(x: torch.Tensor, mask: torch.Tensor, stride: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over 3-step windows of the valid steps, every ``stride`` steps: [B,T,D] -> [B,ceil(T/stride),D]."""
    y = x.masked_fill(~mask[..., None], float("-inf")).transpose(1, 2)
    y = F.max_pool1d(y, 3, stride, 1).transpose(1, 2)
    mask = mask[:, ::stride]
    return torch.where(mask[..., None], y, torch.zeros_like(y)), mask


class ConvLocalSelfAttention(nn.Module):
    """Local self-attention whose q, k, v each pass a depthwise 3-tap convolution + LayerNorm first
    (SnAG's release); with ``stride`` 2 those convolutions down-sample, so the block halves T."""

    def __init__(self, dim: int, heads: int, window: int, stride: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads, self.radius = heads, window // 2
        self.convs = nn.ModuleList(MaskedConv(dim, dim, 3, stride=stride, groups=dim, bias=False) for _ in range(3))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,T,D] -> ([B,T',D], mask [B,T']) with T' = ceil(T / stride)."""
        parts = []
        for conv, norm, lin in zip(self.convs, self.norms, (self.q, self.k, self.v)):
            y, out_mask = conv(x, mask)
            parts.append(lin(norm(y)))
        b, t, dim = parts[0].shape
        q, k, v = (p.view(b, t, self.heads, dim // self.heads).transpose(1, 2) for p in parts)
        out = local_attention(q, k, v, out_mask, self.radius).transpose(1, 2).reshape(b, t, dim)
        return self.drop(self.proj(out)) * out_mask[..., None], out_mask


class ConvEncoderBlock(nn.Module):
    """SnAG's released encoder layer: pre-LN conv local attention (stride 1 or 2) + MLP; at stride 2
    the residual stream is a max-pool of the input, so down-sampling happens inside the layer."""

    def __init__(
        self, dim: int, heads: int, window: int, stride: int, dropout: float, path_drop: float, ls_init: float
    ) -> None:
        super().__init__()
        self.stride = stride
        self.attn = ConvLocalSelfAttention(dim, heads, window, stride, dropout)
        self.ln_attn, self.ln_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, 4, dropout)
        self.ls_attn = LayerScale(dim, ls_init, path_drop)
        self.ls_mlp = LayerScale(dim, ls_init, path_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,T,D] -> ([B,ceil(T/stride),D], its mask); padded steps stay zero."""
        skip = masked_max_pool(x, mask, self.stride)[0] if self.stride > 1 else x
        h, mask = self.attn(self.ln_attn(x), mask)
        x = skip * mask[..., None] + self.ls_attn(h)
        return (x + self.ls_mlp(self.mlp(self.ln_mlp(x)))) * mask[..., None], mask


class Downsample(nn.Module):
    """The pyramid's down-sampling operator (Eq. 4): strided depthwise conv + LayerNorm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = MaskedConv(dim, dim, 3, stride=2, groups=dim, bias=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,T,D] -> [B,ceil(T/2),D] with the halved mask."""
        y, mask = self.conv(x, mask)
        return self.norm(y) * mask[..., None], mask


class FusionLayer(nn.Module):
    """Cross-attention of video steps to words that modulates the video (Eqs. 5-7, SnAG's xattn)."""

    def __init__(
        self, dim: int, text_dim: int, heads: int, mode: str, dropout: float, path_drop: float, ls_init: float
    ) -> None:
        super().__init__()
        self.mode = mode
        self.ln_q, self.ln_kv = nn.LayerNorm(dim), nn.LayerNorm(text_dim)
        self.xattn = GlobalAttention(dim, heads, dropout, kv_dim=text_dim, out_dim=2 * dim)
        self.ln_mlp = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, 4, dropout)
        self.ls_mlp = LayerScale(dim, ls_init, path_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Modulate video [B,T,D] by what each step reads from its query's words."""
        scale, shift = self.xattn(self.ln_q(x), self.ln_kv(text), text_mask).chunk(2, dim=-1)
        if self.mode == "adaln":
            x = F.layer_norm(x, x.shape[-1:])
        x = (x * scale + shift) * mask[..., None]
        return (x + self.ls_mlp(self.mlp(self.ln_mlp(x)))) * mask[..., None]


class ConvHead(nn.Module):
    """Per-level prediction head shared across levels: (conv3 + LN + ReLU) x n, then conv3."""

    def __init__(self, dim: int, out: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(MaskedConv(dim, dim, 3, bias=False) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.out = MaskedConv(dim, out, 3)
        nn.init.zeros_(self.out.conv.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B,T,D] -> [B,T,out]."""
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x, mask)[0]))
        return self.out(x, mask)[0]


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Element-wise focal loss (Lin et al.) on soft targets; alpha weights targets >= 0.5."""
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        pos = (targets >= 0.5).to(logits.dtype)
        loss = loss * (alpha * pos + (1 - alpha) * (1 - pos))
    return loss


def diou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Distance-IoU loss of segments given as distances (to start, to end) from a shared point, [N,2]."""
    # Not metrics.iou.temporal_iou: both segments contain the shared point, so the overlap is a sum of
    # distances and the union never empty; the loss value is the same, but going through windows
    # [-start, end] would change its gradient in the last bits and with it every SnAG run.
    ps, pe = pred.unbind(-1)
    ts, te = target.unbind(-1)
    inter = torch.minimum(ps, ts) + torch.minimum(pe, te)
    union = (ps + pe) + (ts + te) - inter
    iou = inter / union.clamp(min=eps)
    enclosing = torch.maximum(ps, ts) + torch.maximum(pe, te)
    center_gap = 0.5 * ((pe - ps) - (te - ts))
    return 1.0 - iou + (center_gap / enclosing.clamp(min=eps)) ** 2


def regression_ranges(levels: int, first: float, overlap: float) -> list[tuple[float, float]]:
    """Per level, the range of max(distance to start, to end) in clips that the level predicts."""
    ranges = [(0.0, float(first))]
    upper = float(first)
    for level in range(1, levels):
        lo, hi = upper * overlap, upper * 2
        if level == levels - 1:
            hi = math.inf
        ranges.append((lo, hi))
        upper = hi
    return ranges


def score_voting(
    kept: torch.Tensor, segs: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, iou_min: float
) -> torch.Tensor:
    """Replace each kept segment [B,k,2] by the score-weighted mean of the candidates [B,N,2]
    overlapping it with IoU >= ``iou_min`` (SnAG's voting after Soft-NMS)."""
    iou = temporal_iou(kept[:, :, None, :], segs[:, None, :, :])
    weight = (iou >= iou_min).to(segs.dtype) * (scores.clamp(min=0) * valid)[:, None, :]
    total = weight.sum(-1, keepdim=True)
    voted = torch.einsum("bkn,bnc->bkc", weight, segs) / total.clamp(min=1e-12)
    return torch.where(total > 0, voted, kept)
