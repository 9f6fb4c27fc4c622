"""Building blocks of 2D-TAN: clip resampling, the 2D moment map, the masked
temporal adjacent network, scaled-IoU targets and the sentence encoder."""

from __future__ import annotations

from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from momentloc.metrics.iou import hull_iou
from momentloc.models.base import host_lengths

# Moments up to this many clips are all candidates (2D-TAN: "N = 16 dense").
DENSE_SPAN = 16
# Layers per sparse scale after the dense one (2D-TAN's [16, 8, 8, ...]).
SCALE_LAYERS = 8


def sparse_candidate_mask(n: int) -> torch.Tensor:
    """[N,N] bool: cell (a, b) is a candidate moment under 2D-TAN's sampling rule G(a, b).

    With len = b - a + 1 and k = ceil(log2(len / 8)): k <= 1 keeps every cell
    (dense short moments); otherwise s = 2^(k-1), s' = 2^(k+2) - 1 and the cell
    is kept when a mod s == 0 and (b - s') mod s == 0.
    """
    a = torch.arange(n)[:, None].expand(n, n)
    b = torch.arange(n)[None, :].expand(n, n)
    length = (b - a + 1).clamp(min=1).double()
    k = torch.ceil(torch.log2(length / (DENSE_SPAN // 2))).long()
    s = torch.where(k > 1, 2 ** (k - 1).clamp(min=0), torch.ones_like(k))
    s_prime = torch.where(k > 1, 2 ** (k + 2) - 1, torch.zeros_like(k))
    keep = (a % s == 0) & ((b - s_prime) % s == 0)
    return keep & (b >= a)


def resample_clips(video: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """Average-pool each video's valid clip prefix to ``n`` equal bins: [B,T,D] -> [B,n,D].

    Bin j covers the fraction [j/n, (j+1)/n] of the valid clips, each input clip
    weighted by its overlap with the bin, so bins stay aligned with time even when
    the valid length is not a multiple of n (or is shorter than n).
    """
    valid = mask.sum(1).clamp(min=1).to(video.dtype)  # [B]
    t = torch.arange(video.shape[1], device=video.device, dtype=video.dtype)
    j = torch.arange(n, device=video.device, dtype=video.dtype)
    width = valid / n  # bin width in clips, [B]
    lo = j[None, :] * width[:, None]  # [B,n]
    hi = lo + width[:, None]
    overlap = (torch.minimum(t[None, None, :] + 1, hi[..., None]) - torch.maximum(t[None, None, :], lo[..., None]))
    weights = overlap.clamp(min=0) * mask[:, None, :].to(video.dtype)  # [B,n,T]
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-12)
    return torch.bmm(weights, video)


class MomentMap(nn.Module):
    """The 2D temporal feature map: cell (a, b) summarises clips a..b.

    Built hierarchically as in 2D-TAN: the dense scale grows the span one clip per
    layer (kernel 2, stride 1); each later scale starts with kernel 3 / stride 2 and
    then grows by its stride per layer. The cells it visits are exactly those of
    ``sparse_candidate_mask``. ``variant="pool"`` reduces with max-pooling (so a cell
    is the max over its clips), ``variant="conv"`` with a learned Conv1d + ReLU per layer.
    """

    def __init__(self, map_size: int, hidden: int, variant: Literal["pool", "conv"] = "pool") -> None:
        super().__init__()
        self.map_size = map_size
        self.variant = variant
        self.steps = self._plan(map_size)
        self.convs = nn.ModuleList()
        if variant == "conv":
            for kernel, stride, *_ in self.steps:
                self.convs.append(nn.Conv1d(hidden, hidden, kernel, stride))
        idx = torch.arange(map_size)
        # Every candidate cell (a, b), in the order cell_values lists them: the diagonal, then each layer's.
        starts = torch.cat([idx] + [s for _, _, s, _ in self.steps])
        ends = torch.cat([idx] + [e for _, _, _, e in self.steps])
        mask = torch.zeros(map_size, map_size, dtype=torch.bool)
        mask[starts, ends] = True
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("cell_start", starts, persistent=False)
        self.register_buffer("cell_end", ends, persistent=False)

    @staticmethod
    def _plan(n: int) -> list[tuple[int, int, torch.Tensor, torch.Tensor]]:
        """(kernel, stride, start indices, end indices) of every reduction layer."""
        steps = []
        positions, stride, span = n, 1, 1
        scale, layer = 0, 1  # layer 0 of the dense scale is the identity (the diagonal)
        while True:
            first = scale > 0 and layer == 0
            kernel, step = (3, 2) if first else (2, 1)
            if positions < kernel:
                break
            positions = (positions - kernel) // step + 1
            span += 2 * stride if first else stride
            stride *= step
            starts = torch.arange(positions) * stride
            steps.append((kernel, step, starts, starts + span - 1))
            layer += 1
            if layer == (DENSE_SPAN if scale == 0 else SCALE_LAYERS):
                scale, layer = scale + 1, 0
        return steps

    def cell_values(self, clips: torch.Tensor) -> torch.Tensor:
        """clips [B,H,N] -> the feature of every candidate cell [B,H,M] (M = ``mask.sum()``, order of ``cell_start``)."""
        values, x = [clips], clips
        for i, (kernel, stride, _, _) in enumerate(self.steps):
            x = F.relu(self.convs[i](x)) if self.variant == "conv" else F.max_pool1d(x, kernel, stride)
            values.append(x)
        return torch.cat(values, -1)

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """Cell features [B,C,M] -> the map [B,C,N,N], zeros outside the candidate cells."""
        n = self.map_size
        out = values.new_zeros(values.shape[0], values.shape[1], n, n)
        out[:, :, self.cell_start, self.cell_end] = values  # one index_put: the cells are distinct
        return out

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips [B,H,N] -> map [B,H,N,N] (zeros outside the candidate cells)."""
        return self.scatter(self.cell_values(clips))


# Maps at least this wide are convolved band by band over the upper triangle only.
TILED_FROM = 64


def triangle_tile(n: int) -> int | None:
    """Tile side for ``upper_tile_conv`` on an N x N map (None: convolve the whole map)."""
    if n < TILED_FROM or n % 8:
        return None
    return n // 8


def map_memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout the moment map is kept in through the adjacent network: NHWC on a GPU, where cuDNN's
    bf16/fp16 convolutions run fastest on it (an NCHW input costs a transpose per convolution), torch's
    default elsewhere."""
    return torch.channels_last if x.is_cuda else torch.contiguous_format


def _band_input(x: torch.Tensor, i: int, tile: int, pad: int) -> tuple[torch.Tensor, int, int]:
    """Band ``i``'s convolution input, zero-padded like ``padding=pad``: its rows with a ``pad``-row halo, from
    the first column its upper part can see; and where it sits in x (its first row, which is also its first
    column, and its number of rows)."""
    n = x.shape[-1]
    first = max(i * tile - pad, 0)
    bottom = min((i + 1) * tile + pad, n)
    edge = pad - (i * tile - first)  # zero padding before the first row and the first column
    inp = F.pad(x[:, :, first:bottom, first:], (edge, pad, edge, pad - (bottom - (i + 1) * tile)))
    return inp.contiguous(memory_format=map_memory_format(x)), first, bottom - first


class _UpperTileConv(torch.autograd.Function):
    """The banded convolution as one autograd node that keeps only its input map and weight for backward.

    Built from autograd's own ops, every band's padded copy would be saved too
    (about 0.6 of a map per layer); here backward rebuilds each band from x.
    Under autocast the map is cast once (not band by band) and kept in the
    autocast dtype.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, pad: int, tile: int) -> torch.Tensor:
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        xc, w = x.to(dtype), weight.to(dtype)
        n = x.shape[-1]
        layout = map_memory_format(x)
        out = torch.empty(x.shape[0], weight.shape[0], n, n, dtype=dtype, device=x.device, memory_format=layout).zero_()
        with torch.autocast(device, enabled=False):
            for i in range(n // tile):
                out[:, :, i * tile : (i + 1) * tile, i * tile :] = F.conv2d(_band_input(xc, i, tile, pad)[0], w)
        ctx.save_for_backward(xc, weight)
        ctx.pad, ctx.tile, ctx.x_dtype = pad, tile, x.dtype
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor], None, None]:
        xc, weight = ctx.saved_tensors
        pad, tile, n = ctx.pad, ctx.tile, xc.shape[-1]
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.zeros_like(xc) if need_x else None
        acc = torch.promote_types(weight.dtype, torch.float32)  # bf16 bands' weight gradients add up in fp32
        grad_w = torch.zeros_like(weight, dtype=acc) if need_w else None
        w = weight.to(xc.dtype)
        with torch.autocast(xc.device.type, enabled=False):
            for i in range(n // tile):
                inp, first, rows = _band_input(xc, i, tile, pad)
                g = grad[:, :, i * tile : (i + 1) * tile, i * tile :].to(xc.dtype).contiguous(memory_format=map_memory_format(xc))
                g_inp, g_w, _ = torch.ops.aten.convolution_backward(
                    g, inp, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [need_x, need_w, False])
                if grad_w is not None:
                    grad_w += g_w.to(acc)
                if grad_x is not None:
                    edge = pad - (i * tile - first)
                    grad_x[:, :, first : first + rows, first:] += g_inp[:, :, edge : edge + rows, edge : edge + n - first]
        return (grad_x.to(ctx.x_dtype) if grad_x is not None else None,
                grad_w.to(weight.dtype) if grad_w is not None else None, None, None)


def upper_tile_conv(x: torch.Tensor, weight: torch.Tensor, pad: int, tile: int | None) -> torch.Tensor:
    """``F.conv2d(x, weight, padding=pad)`` on the tiles that touch the upper triangle a <= b; zeros elsewhere.

    The N x N map is cut into row bands of ``tile`` rows; band i holds cells
    a <= b only in the columns from i * tile on, so each band is convolved over
    those columns alone (with its ``pad``-wide halo), as (N / tile)^2 square
    tiles of which only the (i, j >= i) ones are computed: for tile = N / 8,
    36 of 64 tiles, 56 % of the work. The cells computed equal the full
    convolution's exactly. One autograd node (``_UpperTileConv``) keeps only x
    and the weight for backward. ``tile`` None, or a halo wider than a band,
    convolves the whole map.
    """
    if tile is None or pad > tile:
        return F.conv2d(x, weight, None, padding=pad)
    return _UpperTileConv.apply(x, weight, pad, tile)


class MaskedMapConv(nn.Module):
    """The temporal adjacent network: a stack of 2D convolutions over the moment map.

    Convolutions see only valid cells: inputs outside the current mask are zero and
    each output is rescaled by k^2 / (number of valid cells under the kernel), so a
    sparse neighbourhood is not diluted by padding. As in the 2D-TAN release the mask
    grows by the kernel's reach after each layer (so context crosses the gaps between
    sparse candidates), but it never leaves the upper triangle a <= b.
    """

    def __init__(self, hidden: int, kernel: int, layers: int) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel}")
        self.kernel = kernel
        self.convs = nn.ModuleList(nn.Conv2d(hidden, hidden, kernel, padding=kernel // 2) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B,H,N,N], candidate mask [N,N] -> [B,H,N,N]."""
        n = mask.shape[-1]
        tile = triangle_tile(n)
        upper = torch.ones(n, n, dtype=torch.bool, device=x.device).triu()
        layout = map_memory_format(x)
        x = x.contiguous(memory_format=layout)  # every layer's output keeps it (the bias below is laid out alike)
        m = mask.to(x.dtype)[None, None]
        ones = x.new_ones(1, 1, self.kernel, self.kernel)
        x = x * m  # later layers' outputs are already zero outside the (growing) mask
        for conv in self.convs:
            count = F.conv2d(m, ones, padding=self.kernel // 2)
            scale = torch.where(count > 0, self.kernel**2 / count.clamp(min=1), torch.zeros_like(count))
            y = upper_tile_conv(x, conv.weight, self.kernel // 2, tile)
            m = ((count > 0) & upper).to(x.dtype)
            # relu(y * scale + bias) * m in one fused multiply-add: m is 0 or 1, and relu(0) = 0. The output takes
            # the layout of the first operand, so the bias is laid out like the map.
            bias = (conv.bias[None, :, None, None] * m).to(y.dtype).contiguous(memory_format=layout)
            x = F.relu(torch.addcmul(bias, y, (scale * m).to(y.dtype)), inplace=True)
        return x


def moment_bounds(n: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end of every cell (a, b) as fractions of the video: a/N and (b+1)/N, [N,N] each."""
    idx = torch.arange(n, device=device, dtype=torch.float32)
    start = (idx[:, None] / n).expand(n, n)
    end = ((idx[None, :] + 1) / n).expand(n, n)
    return start, end


def cell_iou(windows: torch.Tensor, n: int) -> torch.Tensor:
    """IoU of every cell with each ground truth: windows [B,2] in video fractions -> [B,N,N]."""
    start, end = moment_bounds(n, windows.device)
    return hull_iou(torch.stack([start, end], -1), windows[:, None, None, :])  # the release's labels (metrics.iou)


def scaled_iou_targets(windows: torch.Tensor, n: int, t_min: float, t_max: float) -> torch.Tensor:
    """2D-TAN labels: IoU mapped linearly from [t_min, t_max] to [0, 1] and clipped, [B,N,N]."""
    iou = cell_iou(windows, n)
    return ((iou - t_min) / (t_max - t_min)).clamp(0.0, 1.0)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of sigmoid(logits) against soft targets, mean over the masked cells.

    A weighted mean rather than boolean indexing: indexing by a mask asks the
    device how many cells it selects, which stalls a GPU step.
    """
    weight = mask.expand_as(logits).to(torch.float32)
    per_cell = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return (per_cell * weight).sum() / weight.sum().clamp(min=1.0)


class SentenceEncoder(nn.Module):
    """GloVe word vectors -> multi-layer LSTM; the sentence is its last valid hidden state."""

    def __init__(self, text_dim: int, hidden: int, layers: int, bidirectional: bool) -> None:
        super().__init__()
        if bidirectional and hidden % 2:
            raise ValueError(f"hidden_size must be even for a bidirectional LSTM, got {hidden}")
        per_dir = hidden // 2 if bidirectional else hidden
        self.lstm = nn.LSTM(text_dim, per_dir, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.bidirectional = bidirectional

    def forward(self, words: torch.Tensor, word_mask: torch.Tensor,
                lengths: Optional[Sequence[int]] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """words [B,L,E], mask [B,L] (and the lengths, if known on the host) -> (per-word states [B,L,H], sentence [B,H])."""
        packed = pack_padded_sequence(words, host_lengths(word_mask, lengths), batch_first=True, enforce_sorted=False)
        states, (h_n, _) = self.lstm(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=words.shape[1])
        sentence = torch.cat([h_n[-2], h_n[-1]], -1) if self.bidirectional else h_n[-1]
        return states, sentence
