"""A NumPy twin of the residual MLP, and the rule for when a policy samples with it.

Why: at batch 1 on a CPU core, a chunk sampler is dominated by per-op framework overhead, not by
arithmetic. Measured on the 2-core development machine (0.97M-parameter 4x512 MLP, one thread):
one eager torch call ~136 µs against ~40 µs for the same four mat-vecs in NumPy, and a diffusers
`step()` costs about as much again as the network call. torch.compile gave nothing at batch 1.
The twin runs the same function with NumPy's ~1-2 µs ops, folds LayerNorm affines into the
following Linear, and precomputes the conditioning part of the input layer once per chunk.

When: a policy built on `ResidualMLP` with the "flatten" observation encoder uses the twin for
CPU float32 batches of at most `fast_inference_max_batch` sampled without autograd (predict_chunk
runs under inference_mode), if `fast_inference` is on. Larger batches are matmul-bound, where
torch's kernels are as fast or faster, so they take the torch path. Both paths draw their noise
from the same torch generator in the same order, so they return the same chunk up to float32
rounding (tests hold them to 1e-4).

Staleness: the twin is rebuilt whenever any network parameter changes storage or is modified in
place through autograd-visible ops (optimizer steps, EMA updates, load_state_dict: each bumps the
tensor's version counter), and on every `train()`/`eval()` call. Writing through `param.data`
bypasses the version counter; call `policy.eval()` after doing that.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from robotune.plugins.networks import LAYER_NORM_EPS, BackbonePolicyConfig, FlattenObsEncoder, ResidualMLP


def _fold_layer_norm(norm: nn.LayerNorm, linear: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    """Weights (in, out) and bias (out,) of Linear(LayerNorm(h)) acting on the *standardised* h.

    LayerNorm's gain and bias are affine, so they fold into the next layer:
    (z * g + β) Wᵀ + b = z (diag(g) Wᵀ) + (β Wᵀ + b).
    """
    weight = linear.weight.detach().double().T  # (in, out)
    gain, shift = norm.weight.detach().double(), norm.bias.detach().double()
    folded_weight = gain[:, None] * weight
    folded_bias = shift @ weight + linear.bias.detach().double()
    return folded_weight.float().numpy().copy(), folded_bias.float().numpy().copy()


class NumpyResidualMLP:
    """The function of a trained ResidualMLP in float32 NumPy, for small-batch CPU inference.

    Built once from the module's weights. Two things make it cheap per call, besides NumPy's low
    per-op cost: LayerNorm affines are folded into the following Linear, and the input layer's
    conditioning part (cond @ W_cond + b + time_embedding(t) @ W_time) is computed once per chunk
    for every time the sampler will visit (`input_bias`), leaving chunk_in @ W_chunk per call.
    """

    def __init__(self, net: ResidualMLP) -> None:
        self.chunk_width = net.horizon * net.in_channels
        self.horizon, self.out_channels = net.horizon, net.out_channels
        with torch.no_grad():
            weight = net.input.weight.detach().T.float()  # (chunk + cond + time, hidden)
            self.w_chunk = weight[: self.chunk_width].numpy().copy()
            self.w_cond = weight[self.chunk_width : self.chunk_width + net.cond_dim].numpy().copy()
            self.input_bias_const = net.input.bias.detach().float().numpy().copy()
            w_time = weight[self.chunk_width + net.cond_dim :]
            self._time_rows = (lambda t: net.time_embedding(t) @ w_time) if net.time_embedding is not None else None
            self.blocks = []
            for block in net.blocks:
                w1, b1 = _fold_layer_norm(block.norm, block.linear1)
                w2 = block.linear2.weight.detach().T.float().numpy().copy()
                b2 = block.linear2.bias.detach().float().numpy().copy()
                self.blocks.append((w1, b1, w2, b2))
            self.w_out, self.b_out = _fold_layer_norm(net.output_norm, net.output)
        self.hidden_dim = self.input_bias_const.shape[0]
        self._time_tables: dict[tuple[float, ...], np.ndarray] = {}

    def time_table(self, times: tuple[float, ...]) -> np.ndarray:
        """(K, hidden): the time embedding's contribution to the input layer at each sampler time."""
        if times not in self._time_tables:
            with torch.no_grad():
                t = torch.tensor(times, dtype=torch.float32)
                self._time_tables[times] = self._time_rows(t).numpy().copy()
        return self._time_tables[times]

    def input_bias(self, cond: np.ndarray, times: tuple[float, ...] | None = None) -> np.ndarray:
        """cond (B, C) -> (K, B, hidden) for the K sampler times (K = 1 and no time term if `times` is None)."""
        bias = cond @ self.w_cond + self.input_bias_const
        if times is None:
            return bias[None]
        return self.time_table(times)[:, None, :] + bias[None]

    def __call__(self, chunk_in_flat: np.ndarray | None, input_bias: np.ndarray) -> np.ndarray:
        """chunk_in_flat (B, H * D_in) or None, input_bias (B, hidden) -> (B, H * D_out)."""
        h = input_bias.copy() if chunk_in_flat is None else chunk_in_flat @ self.w_chunk + input_bias
        for w1, b1, w2, b2 in self.blocks:
            u = _standardize(h) @ w1
            u += b1
            h += _mish(u) @ w2
            h += b2
        out = _standardize(h) @ self.w_out
        out += self.b_out
        return out


def _standardize(h: np.ndarray) -> np.ndarray:
    """(h - mean) / sqrt(var + eps) over the last axis, as LayerNorm before its affine; a new array."""
    scale = 1.0 / h.shape[-1]
    if h.shape[0] == 1:  # batch 1: scalar statistics as Python floats save four NumPy calls (~2 µs each)
        d = h - float(np.add.reduce(h[0])) * scale
        d *= 1.0 / math.sqrt(float(np.dot(d[0], d[0])) * scale + LAYER_NORM_EPS)
        return d
    d = h - np.add.reduce(h, axis=-1, keepdims=True) * scale
    var = np.add.reduce(d * d, axis=-1, keepdims=True)
    var *= scale
    var += LAYER_NORM_EPS
    d /= np.sqrt(var, out=var)
    return d


def _mish(x: np.ndarray) -> np.ndarray:
    """x tanh(softplus(x)); exp overflows to inf for x > 88, and tanh(log1p(inf)) = 1 is still exact."""
    y = np.exp(x)
    np.log1p(y, out=y)
    np.tanh(y, out=y)
    y *= x
    return y


class NumpyFastPath:
    """Mixin for a Policy with `self.network` and `self.obs_encoder`: decides and caches the twin."""

    def numpy_network(self, obs_norm: torch.Tensor) -> NumpyResidualMLP | None:
        """The twin of `self.network` if this call should use it (see the module docstring), else None."""
        config: BackbonePolicyConfig = self.config
        if not (
            config.fast_inference
            and obs_norm.shape[0] <= config.fast_inference_max_batch
            and isinstance(self.network, ResidualMLP)
            and isinstance(self.obs_encoder, FlattenObsEncoder)
            and not torch.is_grad_enabled()
            and obs_norm.device.type == "cpu"
            and obs_norm.dtype == torch.float32
        ):
            return None
        signature = tuple((p.data_ptr(), p._version) for p in self.network.parameters())
        cached = self.__dict__.get("_numpy_twin")
        if cached is None or cached[0] != signature:
            cached = (signature, NumpyResidualMLP(self.network))
            self.__dict__["_numpy_twin"] = cached
        return cached[1]

    def train(self, mode: bool = True):
        self.__dict__.pop("_numpy_twin", None)
        return super().train(mode)


def clip_(x: np.ndarray, limit: float) -> np.ndarray:
    """In-place clip to [-limit, limit]; two ufunc calls are ~3x faster than np.clip on small arrays."""
    np.maximum(x, -limit, out=x)
    np.minimum(x, limit, out=x)
    return x
