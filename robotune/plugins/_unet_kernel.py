"""The 1-D U-Net's forward pass as Numba-compiled functions, for small-batch CPU inference.

Why: at batch 1 the U-Net's convolutions are skinny matrix products (an output of 4-16 chunk
positions times 64-256 channels), and MKL runs them badly on this CPU: torch's Conv1d at batch 1
goes through im2col and a (C_out, K*C_in) x (K*C_in, H) GEMM at ~6-13 GFLOP/s, about 400 µs for one
256-channel layer (mkldnn's convolution took ~170 µs). Around them sit ~190 torch calls per network
call (33 convolutions, 25 GroupNorms, 38 Mish, FiLM, concatenation) at a few µs each. Here each
convolution is dot products of a contiguous weight row with a contiguous input window (~40-60
GFLOP/s on this CPU with the weights in cache), and the elementwise steps are fused into one pass.
What is left at batch 1 is mostly memory: a call reads all 16.5 MB of weights once, and its 35
convolutions took ~1.2-1.4 ms in sequence against ~0.73 ms summed with each layer's weights already
in cache (software prefetching of the next weight rows made it slower; two weight rows per pass
were faster in isolation but slower in the network).

Layout: activations are channels-last. A buffer holds, per batch row, `pad` zero positions, the
chunk's positions, then `pad` zero positions again, each position a run of C floats, flattened:
(B, (pad + H + pad) * C). The input window of a convolution's output h is then one contiguous run
of kernel * C_in floats, and a weight row stored tap-major, (C_out, kernel, C_in), is a dot product
with it: im2col without the copy. A weight row stays in L1 across every output position and batch
row, so each matrix is read from memory once per call.

Weights come in one flat float32 vector, described by integer tables built by
`fast_inference.NumpyConditionalUnet1D` in the order the forward pass uses them:
  convs (n, 6): offset, out_channels, kernel, in_channels, stride, padding; the bias follows the
                weight at offset + out_channels * kernel * in_channels;
  norms (n, 3): offset (GroupNorm's gain, then its shift), groups, channels.
A transposed convolution (kernel 4, stride 2, padding 1) arrives as a kernel-3 convolution with
2 C outputs per position, [even output, odd output] (its polyphase form): C_out = 2 C channels at
position j are exactly output positions 2j and 2j + 1 in the channels-last layout.

Imported on first use (Numba is slow to import), like `_mlp_kernel`. The first compile takes ~20 s of CPU
here; the machine code is then cached on disk.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from robotune.plugins._mlp_kernel import _jit, add_matmul, affine_step_, mish


class UnetWeights(NamedTuple):
    """Everything the compiled U-Net reads, built once per export by `fast_inference.NumpyConditionalUnet1D`.

    weights, convs, norms: the flat weights and their tables (module docstring), in forward order.
    channels (levels,): the U-Net's widths. position_code (H, 8): the learned per-position inputs.
    w_film_obs (F, ≥ To * Do + 1): every block's FiLM weights on the observation, in `add_matmul`'s
    layout (zero bias column); F = Σ 2 * block width. obs_center, obs_half_range (To * Do,): the
    observation normaliser per element of the flattened history.
    """

    weights: np.ndarray
    convs: np.ndarray
    norms: np.ndarray
    channels: np.ndarray
    position_code: np.ndarray
    w_film_obs: np.ndarray
    obs_center: np.ndarray
    obs_half_range: np.ndarray
    in_channels: int
    pad: int
    eps: float


@_jit
def conv_(x: np.ndarray, x_pad: int, weights: np.ndarray, layer: np.ndarray, out: np.ndarray, out_start: int, positions: int) -> None:
    """out[b, out_start + h * C_out + j] = bias_j + W_j · window_h(x[b]) for h < positions, j < C_out.

    x (B, (x_pad + H + x_pad) * C_in) as in the module docstring; window_h starts at position
    x_pad - padding + h * stride. Four output positions share each load of the weight row (four
    accumulators): 1.5-1.7x faster than one at a time on this CPU. The loops run over slices, so
    that the indices are plain loop counters and LLVM vectorises them (reassociation).
    """
    offset, out_channels, kernel, in_channels, stride, padding = layer
    width, step = kernel * in_channels, stride * in_channels
    bias = offset + out_channels * width
    for j in range(out_channels):
        row = weights[offset + j * width : offset + (j + 1) * width]  # from L1 for every batch row after the first
        for b in range(x.shape[0]):
            h = 0
            while h < positions:
                start = (x_pad - padding + h * stride) * in_channels
                target = out_start + h * out_channels + j
                if h + 4 <= positions:
                    window0, window1 = x[b, start : start + width], x[b, start + step : start + step + width]
                    window2, window3 = x[b, start + 2 * step : start + 2 * step + width], x[b, start + 3 * step : start + 3 * step + width]
                    total0 = total1 = total2 = total3 = weights[bias + j]
                    for i in range(width):
                        w = row[i]
                        total0 += w * window0[i]
                        total1 += w * window1[i]
                        total2 += w * window2[i]
                        total3 += w * window3[i]
                    out[b, target], out[b, target + out_channels] = total0, total1
                    out[b, target + 2 * out_channels], out[b, target + 3 * out_channels] = total2, total3
                    h += 4
                else:
                    window0 = x[b, start : start + width]
                    total0 = weights[bias + j]
                    for i in range(width):
                        total0 += row[i] * window0[i]
                    out[b, target] = total0
                    h += 1


@_jit
def group_norm_mish_(
    x: np.ndarray, pad: int, positions: int, weights: np.ndarray, norm: np.ndarray, eps: float, film: np.ndarray, film_offset: int
) -> None:
    """x <- mish(GroupNorm(x)) over its `positions` positions, then * scale + bias from film[:, film_offset:] if film_offset ≥ 0.

    GroupNorm: per batch row and group of channels/groups channels, standardise over positions and
    channels (mean first, then the variance of the centred values, as torch computes it), then the
    per-channel gain and shift. film (B, F): FiLM's scale at [film_offset, + C), its bias after.
    """
    offset, groups, channels = norm
    size = channels // groups
    count = positions * size
    for b in range(x.shape[0]):
        for g in range(groups):
            first = pad * channels + g * size  # the group's channels at the first position
            gain = weights[offset + g * size : offset + (g + 1) * size]
            shift = weights[offset + channels + g * size : offset + channels + (g + 1) * size]
            total = np.float32(0.0)
            for p in range(positions):
                values = x[b, first + p * channels : first + p * channels + size]
                for c in range(size):
                    total += values[c]
            mean = total / count
            var = np.float32(0.0)
            for p in range(positions):
                values = x[b, first + p * channels : first + p * channels + size]
                for c in range(size):
                    var += (values[c] - mean) * (values[c] - mean)
            inv_std = np.float32(1.0 / math.sqrt(var / count + eps))
            for p in range(positions):
                values = x[b, first + p * channels : first + p * channels + size]
                for c in range(size):
                    values[c] = mish((values[c] - mean) * inv_std * gain[c] + shift[c])
            if film_offset >= 0:
                scale = film[b, film_offset + g * size : film_offset + (g + 1) * size]
                bias = film[b, film_offset + channels + g * size : film_offset + channels + (g + 1) * size]
                for p in range(positions):
                    values = x[b, first + p * channels : first + p * channels + size]
                    for c in range(size):
                        values[c] = values[c] * scale[c] + bias[c]


@_jit
def film_block(
    net: UnetWeights, x: np.ndarray, in_channels: int, out_channels: int, positions: int, layer: int, norm: int,
    film: np.ndarray, film_offset: int,
) -> np.ndarray:
    """FiLMResidualBlock on x (B, (pad + positions + pad) * in_channels) -> a new buffer of out_channels.

    conv1 -> GroupNorm -> Mish -> FiLM -> conv2 -> GroupNorm -> Mish, plus the skip: x itself, or a
    1x1 conv where the widths differ. Uses convs[layer], convs[layer + 1] (and convs[layer + 2] for
    the skip), norms[norm] and norms[norm + 1], and the FiLM scale and bias at film[:, film_offset:].
    """
    batch, start = x.shape[0], net.pad * out_channels
    hidden = np.zeros((batch, (positions + 2 * net.pad) * out_channels), np.float32)
    conv_(x, net.pad, net.weights, net.convs[layer], hidden, start, positions)
    group_norm_mish_(hidden, net.pad, positions, net.weights, net.norms[norm], net.eps, film, film_offset)
    out = np.zeros_like(hidden)
    conv_(hidden, net.pad, net.weights, net.convs[layer + 1], out, start, positions)
    group_norm_mish_(out, net.pad, positions, net.weights, net.norms[norm + 1], net.eps, film, -1)
    if in_channels == out_channels:
        out += x
    else:
        skip = np.zeros_like(hidden)
        conv_(x, net.pad, net.weights, net.convs[layer + 2], skip, start, positions)
        out += skip
    return out


@_jit
def unet_forward(net: UnetWeights, x_in: np.ndarray, film: np.ndarray, out: np.ndarray) -> None:
    """out (B, H * D_out) = ConditionalUnet1D on x_in (B, (pad + H + pad) * C_0), with FiLM film (B, F) for every block.

    x_in holds [chunk_in, position code] per position; film the FiLM scale and bias of every block
    in order (2 * its width each). Mirrors ConditionalUnet1D.forward, layer for layer.
    """
    weights, convs, channels, pad = net.weights, net.convs, net.channels, net.pad
    batch, levels, horizon = x_in.shape[0], channels.shape[0], net.position_code.shape[0]
    layer, norm, film_offset = 0, 0, 0  # the next conv, norm and FiLM vector to use
    x, width, positions = x_in, x_in.shape[1] // (horizon + 2 * pad), horizon

    def block(x, in_width, out_width, positions, layer, norm, film_offset):
        out = film_block(net, x, in_width, out_width, positions, layer, norm, film, film_offset)
        return out, layer + (2 if in_width == out_width else 3), norm + 2, film_offset + 2 * out_width

    skips = []
    for level in range(levels):
        x, layer, norm, film_offset = block(x, width, channels[level], positions, layer, norm, film_offset)
        width = channels[level]
        x, layer, norm, film_offset = block(x, width, width, positions, layer, norm, film_offset)
        skips.append(x)
        if level < levels - 1:  # stride-2 downsample
            positions //= 2
            down = np.zeros((batch, (positions + 2 * pad) * width), np.float32)
            conv_(x, pad, weights, convs[layer], down, pad * width, positions)
            x, layer = down, layer + 1
    for _ in range(2):  # middle
        x, layer, norm, film_offset = block(x, width, width, positions, layer, norm, film_offset)
    for level in range(levels - 2, -1, -1):
        skip = skips[level + 1]  # the down path's output of the same length, joined after x
        joined = np.zeros((batch, (positions + 2 * pad) * 2 * width), np.float32)
        for b in range(batch):
            for p in range(pad, pad + positions):
                joined[b, 2 * p * width : (2 * p + 1) * width] = x[b, p * width : (p + 1) * width]
                joined[b, (2 * p + 1) * width : (2 * p + 2) * width] = skip[b, p * width : (p + 1) * width]
        x, layer, norm, film_offset = block(joined, 2 * width, channels[level], positions, layer, norm, film_offset)
        width = channels[level]
        x, layer, norm, film_offset = block(x, width, width, positions, layer, norm, film_offset)
        up = np.zeros((batch, (2 * positions + 2 * pad) * width), np.float32)  # transposed conv, polyphase
        conv_(x, pad, weights, convs[layer], up, pad * width, positions)
        x, layer, positions = up, layer + 1, 2 * positions
    hidden = np.zeros_like(x)
    conv_(x, pad, weights, convs[layer], hidden, pad * width, positions)
    group_norm_mish_(hidden, pad, positions, weights, net.norms[norm], net.eps, film, -1)
    conv_(hidden, pad, weights, convs[layer + 1], out, 0, positions)


@_jit
def _network_input(net: UnetWeights, batch: int) -> np.ndarray:
    """A zeroed input buffer (B, (pad + H + pad) * (D_in + 8)) with the position code in place."""
    horizon, code_channels = net.position_code.shape
    width, pad = net.in_channels + code_channels, net.pad
    x_in = np.zeros((batch, (horizon + 2 * pad) * width), np.float32)
    for b in range(batch):
        for h in range(horizon):
            x_in[b, (pad + h) * width + net.in_channels : (pad + h + 1) * width] = net.position_code[h]
    return x_in


@_jit
def _set_chunk_(net: UnetWeights, x_in: np.ndarray, chunk: np.ndarray) -> None:
    """Copy chunk (B, H * D_in) into the input buffer's chunk channels."""
    width, pad, d_in = net.in_channels + net.position_code.shape[1], net.pad, net.in_channels
    for b in range(chunk.shape[0]):
        for h in range(net.position_code.shape[0]):
            x_in[b, (pad + h) * width : (pad + h) * width + d_in] = chunk[b, h * d_in : (h + 1) * d_in]


@_jit
def _film_of_observation(net: UnetWeights, obs: np.ndarray, film_size: int) -> np.ndarray:
    """(B, F): every block's FiLM, the observation's part: mish(normalised obs) @ W_obs. obs (B, To * Do) raw."""
    cond = np.empty_like(obs)
    for b in range(obs.shape[0]):
        for i in range(obs.shape[1]):
            cond[b, i] = mish((obs[b, i] - net.obs_center[i]) / net.obs_half_range[i])
    film = np.zeros((obs.shape[0], film_size), np.float32)
    add_matmul(cond, net.w_film_obs, film)
    return film


@_jit
def network(net: UnetWeights, chunk_in: np.ndarray, obs: np.ndarray, film_time: np.ndarray, out: np.ndarray) -> None:
    """One call: out (B, H * D_out) for chunk_in (B, H * D_in) and raw obs (B, To * Do); film_time (F,) as in `sample_affine`."""
    film = _film_of_observation(net, obs, film_time.shape[0]) + film_time
    x_in = _network_input(net, obs.shape[0])
    _set_chunk_(net, x_in, chunk_in)
    unet_forward(net, x_in, film, out)


@_jit
def sample_affine(
    net: UnetWeights, x: np.ndarray, obs: np.ndarray, film_time: np.ndarray, steps: np.ndarray, noise: np.ndarray, clip: float
) -> None:
    """Run K sampler steps on x (B, H * D) in place: `_mlp_kernel.sample_affine` with the U-Net as the network.

    Mish acts elementwise on FiLM's input [time embedding, observation], so every FiLM vector is
    the sum of an observation part, computed once per chunk, and film_time[k] (K, F), the time
    part plus the FiLM biases, computed once per set of sampler times.
    """
    film_obs = _film_of_observation(net, obs, film_time.shape[1])
    film = np.empty_like(film_obs)
    x_in = _network_input(net, x.shape[0])
    out = np.empty_like(x)
    for k in range(steps.shape[0]):
        film[:] = film_obs + film_time[k]
        _set_chunk_(net, x_in, x)
        unet_forward(net, x_in, film, out)
        affine_step_(x, out, steps[k], noise[k], clip)
