"""A NumPy twin of the residual MLP, and the rule for when a policy samples with it.

Why: at batch 1 on a CPU core, a chunk sampler is dominated by per-op framework overhead, not by
arithmetic. Measured on the 2-core development machine (0.97M-parameter 4x512 MLP, one thread):
one eager torch call ~136 µs against ~40 µs for the same four mat-vecs in NumPy, and a diffusers
`step()` costs about as much again as the network call. torch.compile gave nothing at batch 1.
The twin runs the same function with NumPy's ~1-2 µs ops, folds LayerNorm affines and biases into
the weight matrices, and precomputes the conditioning part of the input layer once per chunk.
`benchmarks/inference_latency.py` measured DDIM-10 on the default 1.16M-parameter denoiser at
~4x lower latency than the diffusers step() loop on the same network (p50 and p99, batch 1).

When: a policy built on `ResidualMLP` with the "flatten" observation encoder uses the twin for
CPU float32 batches of at most `fast_inference_max_batch` sampled without autograd (predict_chunk
runs under inference_mode), if `fast_inference` is on. Larger batches are matmul-bound, where
torch's kernels are as fast or faster, so they take the torch path. Both paths draw their noise
from the same torch generator in the same order, so they return the same chunk up to float32
rounding (tests hold them to 1e-4).

Staleness: the twin is rebuilt whenever a network parameter is modified in place through
autograd-visible ops (optimizer steps, EMA updates, load_state_dict: each bumps the tensor's
version counter) or moves to new storage, and it is dropped on `train()`/`eval()`, `.to()` and
`load_state_dict()`. Writing through `param.data`, or assigning a new Parameter object to a
submodule, bypasses both checks; call `policy.eval()` after doing that.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from robotune.plugins.networks import LAYER_NORM_EPS, BackbonePolicyConfig, FlattenObsEncoder, ResidualMLP


def _fold_layer_norm(norm: nn.LayerNorm, linear: nn.Linear) -> np.ndarray:
    """Linear(LayerNorm(h)) as one (in + 1, out) matrix acting on [(h - mean(h)), std(h)] / std(h).

    LayerNorm's gain g and shift β are affine, so they fold into the next layer:
    (z g + β) Wᵀ + b = z (diag(g) Wᵀ) + (β Wᵀ + b), with z the standardised h. The bias row is
    multiplied by std(h) on the way in and divided out with everything else, which saves a
    separate bias add per layer (see `_norm_linear`).
    """
    weight = linear.weight.detach().double().T  # (in, out)
    gain, shift = norm.weight.detach().double(), norm.bias.detach().double()
    folded_bias = shift @ weight + linear.bias.detach().double()
    return _with_bias_row(gain[:, None] * weight, folded_bias)


def _with_bias_row(weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    return torch.cat([weight, bias[None, :]]).float().numpy().copy()


class NumpyResidualMLP:
    """The function of a trained ResidualMLP in float32 NumPy, for small-batch CPU inference.

    Built once from the module's weights. Per call it makes ~30 NumPy calls, 5 of them mat-vecs:
    LayerNorm affines and every bias are folded into weight matrices with one extra row, and the
    input layer's conditioning part (cond @ W_cond + b + time_embedding(t) @ W_time) is computed
    once per chunk for every time the sampler will visit (`input_bias`).
    """

    def __init__(self, net: ResidualMLP) -> None:
        self.chunk_width = net.horizon * net.in_channels
        with torch.no_grad():
            weight = net.input.weight.detach().T.float()  # (chunk + cond + time, hidden)
            self.w_chunk = weight[: self.chunk_width].numpy().copy()
            self.w_cond = weight[self.chunk_width : self.chunk_width + net.cond_dim].numpy().copy()
            self.input_bias_const = net.input.bias.detach().float().numpy().copy()
            w_time = weight[self.chunk_width + net.cond_dim :]
            self._time_rows = (lambda t: net.time_embedding(t) @ w_time) if net.time_embedding is not None else None
            # Per block: LayerNorm+linear1 (hidden + 1, hidden) and linear2 with its bias row (hidden + 1, hidden).
            self.blocks = [
                (
                    _fold_layer_norm(block.norm, block.linear1),
                    _with_bias_row(block.linear2.weight.detach().double().T, block.linear2.bias.detach().double()),
                )
                for block in net.blocks
            ]
            self.w_out = _fold_layer_norm(net.output_norm, net.output)
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
        batch, n = input_bias.shape
        if chunk_in_flat is None:
            h = input_bias.copy()
        else:
            h = chunk_in_flat @ self.w_chunk
            h += input_bias
        scratch = np.empty((batch, n + 1), np.float32)  # [h - mean, std] for each LayerNorm
        activation = np.empty((batch, n + 1), np.float32)  # [mish(u), 1]: the 1 picks linear2's bias row
        activation[:, n] = 1.0
        for w1, w2 in self.blocks:
            u = _norm_linear(h, scratch, w1)
            _mish(u, out=activation[:, :n])
            h += activation @ w2
        return _norm_linear(h, scratch, self.w_out)


def _norm_linear(h: np.ndarray, scratch: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """LayerNorm(h) then Linear, with `weight` from `_fold_layer_norm`: ([h - μ, σ] @ weight) / σ."""
    n = h.shape[-1]
    centered = scratch[:, :n]
    if h.shape[0] == 1:  # batch 1: the statistics as Python floats save four NumPy calls (~2 µs each)
        np.subtract(h, float(np.add.reduce(h[0])) / n, out=centered)
        std = math.sqrt(float(np.dot(centered[0], centered[0])) / n + LAYER_NORM_EPS)
        scratch[0, n] = std
        out = scratch @ weight
        out *= 1.0 / std
        return out
    mean = np.add.reduce(h, axis=-1, keepdims=True)
    mean *= 1.0 / n
    np.subtract(h, mean, out=centered)
    var = np.add.reduce(centered * centered, axis=-1, keepdims=True)
    var *= 1.0 / n
    var += LAYER_NORM_EPS
    std = scratch[:, n:]
    np.sqrt(var, out=std)
    out = scratch @ weight
    out /= std
    return out


def _mish(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """x tanh(log(1 + eˣ)) into `out`. log(1 + e) beats log1p(e) by 2 µs per call and differs by
    < 1e-6 absolutely; eˣ overflows to inf for x > 88, where tanh(inf) = 1 is still exact."""
    y = np.exp(x)
    y += 1.0
    np.log(y, out=y)
    np.tanh(y, out=y)
    return np.multiply(y, x, out=out)


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
        cached = self.__dict__.get("_numpy_twin")
        if cached is not None:
            parameters, signature, twin = cached
            if signature == tuple((p.data_ptr(), p._version) for p in parameters):
                return twin
        parameters = tuple(self.network.parameters())
        signature = tuple((p.data_ptr(), p._version) for p in parameters)
        self.__dict__["_numpy_twin"] = (parameters, signature, NumpyResidualMLP(self.network))
        return self.__dict__["_numpy_twin"][2]

    # Anything that may swap parameter tensors rather than write into them drops the twin.
    def train(self, mode: bool = True):
        self.__dict__.pop("_numpy_twin", None)
        return super().train(mode)

    def _apply(self, *args, **kwargs):
        self.__dict__.pop("_numpy_twin", None)
        return super()._apply(*args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        self.__dict__.pop("_numpy_twin", None)
        return super().load_state_dict(*args, **kwargs)


def clip_(x: np.ndarray, limit: float) -> np.ndarray:
    """In-place clip to [-limit, limit]; two ufunc calls are ~3x faster than np.clip on small arrays."""
    np.maximum(x, -limit, out=x)
    np.minimum(x, limit, out=x)
    return x
