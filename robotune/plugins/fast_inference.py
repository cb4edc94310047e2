"""A NumPy twin of the residual MLP, and the rule for when a policy samples with it.

Why: at batch 1 on a CPU core, a chunk sampler is dominated by per-op framework overhead, not by
arithmetic. Measured on the 2-core development machine (0.97M-parameter 4x512 MLP, one thread):
one eager torch call ~136 µs against ~40 µs for the same four mat-vecs in NumPy, and a diffusers
`step()` costs about as much again as the network call. torch.compile gave nothing at batch 1.
The twin holds the same function as float32 NumPy arrays, with LayerNorm affines and biases folded
into the weight matrices and the conditioning part of the input layer precomputed once per chunk,
and runs as Numba-compiled functions that release the GIL (`_mlp_kernel.py`; NumPy ufuncs for the
same steps spent ~45% of a call in dispatch). A sampler whose steps are each one network call and
an affine update (DDIM, DDPM, Euler flow) runs all its steps in one compiled call (`sample`); each
policy's file states its sampler's constants next to its torch loop. On the default 1.16M-parameter
denoiser, DDIM-10 at batch 1 takes ~1.2-1.4 ms (p50) here, 7.4-7.9x less than the diffusers step() loop
(`benchmarks/inference_latency.py`).

When: `predict_chunk` of a policy built on `ResidualMLP` with the "flatten" observation encoder
uses the twin for CPU float32 batches of at most `fast_inference_max_batch`, if `fast_inference` is
on. Larger batches are matmul-bound, where torch's kernels are as fast or faster, so they take the
torch path. Both paths draw their noise
from the same torch generator in the same order, so they return the same chunk up to float32
rounding (tests hold them to 1e-4).

Staleness: the twin is rebuilt whenever a network parameter or normaliser buffer is modified in
place through autograd-visible ops (optimizer steps, EMA updates, load_state_dict: each bumps the
tensor's version counter), and it is dropped on `train()`/`eval()`, `.to()` and
`load_state_dict()`. Writing through `param.data`, or assigning a new Parameter or tensor object,
bypasses both checks; call `policy.eval()` after doing that.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from robotune.core.normalization import Normalizer
from robotune.plugins.networks import LAYER_NORM_EPS, BackbonePolicyConfig, FlattenObsEncoder, ResidualMLP


def _fold_layer_norm(norm: nn.LayerNorm, linear: nn.Linear) -> np.ndarray:
    """Linear(LayerNorm(h)) as one matrix acting on the standardised h, in `_with_bias_row`'s layout.

    LayerNorm's gain g and shift β are affine, so they fold into the next layer:
    (z g + β) Wᵀ + b = z (diag(g) Wᵀ) + (β Wᵀ + b), with z the standardised h.
    """
    weight = linear.weight.detach().double().T  # (in, out)
    gain, shift = norm.weight.detach().double(), norm.bias.detach().double()
    folded_bias = shift @ weight + linear.bias.detach().double()
    return _with_bias_row(gain[:, None] * weight, folded_bias)


def _with_bias_row(weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """(in, out) weight and (out,) bias -> the kernel's layout: (out, in + 1), transposed, bias last."""
    return np.ascontiguousarray(torch.cat([weight, bias[None, :]]).T.float().numpy())


class NumpyResidualMLP:
    """The function of a trained ResidualMLP in float32 NumPy, with the policy's normalisers, for small-batch CPU inference.

    Built once from the module's weights: LayerNorm affines and every bias are folded into weight
    matrices with one extra row, and the input layer's conditioning part
    (cond @ W_cond + b + time_embedding(t) @ W_time) is computed once per chunk for every time the
    sampler will visit (`input_bias`). Each call is then one compiled function (`_mlp_kernel`).
    """

    def __init__(self, net: ResidualMLP, obs_normalizer: Normalizer, action_normalizer: Normalizer) -> None:
        self.chunk_width = net.horizon * net.in_channels
        with torch.no_grad():
            # The normalisers as NumPy (per dimension; they broadcast over (B, To, Do) and (B, H * Da)).
            self.obs_center = obs_normalizer.center.numpy().copy()
            self.obs_inv_half_range = (1.0 / obs_normalizer.half_range).numpy().copy()
            self.action_center = np.tile(action_normalizer.center.numpy(), net.horizon)
            self.action_half_range = np.tile(action_normalizer.half_range.numpy(), net.horizon)
            weight = net.input.weight.detach().T.float()  # (chunk + cond + time, hidden)
            self.w_chunk = np.ascontiguousarray(weight[: self.chunk_width].T.numpy())  # (hidden, chunk), as the kernel reads it
            self.w_cond = weight[self.chunk_width : self.chunk_width + net.cond_dim].numpy().copy()
            self.input_bias_const = net.input.bias.detach().float().numpy().copy()
            w_time = weight[self.chunk_width + net.cond_dim :]
            self._time_rows = (lambda t: net.time_embedding(t) @ w_time) if net.time_embedding is not None else None
            # Per block, stacked: LayerNorm+linear1 and linear2, each (hidden, hidden + 1) with its bias column.
            self.w_norm_linear1 = np.stack([_fold_layer_norm(block.norm, block.linear1) for block in net.blocks])
            self.w_linear2 = np.stack(
                [_with_bias_row(block.linear2.weight.detach().double().T, block.linear2.bias.detach().double()) for block in net.blocks]
            )
            self.w_out = _fold_layer_norm(net.output_norm, net.output)
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
        """chunk_in_flat (B, H * D_in) or None, input_bias (B, hidden) -> (B, H * D_out), float32."""
        batch = input_bias.shape[0]
        if chunk_in_flat is None:  # a network without chunk input, or a zero chunk (MIP's first step)
            chunk_in_flat = np.empty((batch, 0), np.float32)
        out = np.empty((batch, self.w_out.shape[0]), np.float32)
        _kernel().residual_mlp(
            np.ascontiguousarray(chunk_in_flat, np.float32),
            np.ascontiguousarray(input_bias, np.float32),
            self.w_chunk,
            self.w_norm_linear1,
            self.w_linear2,
            self.w_out,
            LAYER_NORM_EPS,
            out,
        )
        return out


    def sample(
        self, x: np.ndarray, input_bias: np.ndarray, steps: np.ndarray, noise: np.ndarray | None = None, clip: float = math.inf
    ) -> np.ndarray:
        """Run a sampler given as K affine steps on the chunk x (B, H * D), in one compiled call; returns x.

        input_bias (K, B, hidden) from `input_bias`; steps (K, 6) with columns AFFINE_STEP_COLUMNS;
        noise (K, B, H * D) for steps with sigma > 0 (drawn by the caller, in the torch path's order).
        Step k: out = network(x, t_k); x0 = clip(r_xt x + r_out out); x = c_x0 x0 + c_out out + c_xt x + sigma z_k.
        """
        x = np.array(x, np.float32, order="C")  # a fresh array: the kernel writes into it
        if noise is None:
            noise = np.zeros((len(steps), *x.shape), np.float32)
        _kernel().sample_affine(
            x,
            np.ascontiguousarray(input_bias, np.float32),
            np.ascontiguousarray(steps, np.float64),
            np.ascontiguousarray(noise, np.float32),
            clip,
            self.w_chunk,
            self.w_norm_linear1,
            self.w_linear2,
            self.w_out,
            LAYER_NORM_EPS,
        )
        return x


# Columns of a sampler step table for `NumpyResidualMLP.sample`, which documents the update.
AFFINE_STEP_COLUMNS = ("r_xt", "r_out", "c_x0", "c_out", "c_xt", "sigma")


@functools.cache
def _kernel():
    """The compiled forward pass (`_mlp_kernel`), imported on first use: Numba is slow to import."""
    from robotune.plugins import _mlp_kernel

    return _mlp_kernel


class NumpyFastPath:
    """Mixin for a Policy with `self.network` and `self.obs_encoder`: samples small CPU batches on the twin.

    `predict_chunk` runs end to end in NumPy when the twin applies (see the module docstring):
    normalise, the policy's `sample_chunk_norm_numpy`, clamp and unnormalise, with no torch op on
    the way (each costs ~5-10 µs at batch 1, as much as a fifth of a two-call MIP chunk).
    Otherwise it falls back to the torch path of `Policy.predict_chunk`.
    """

    def sample_chunk_norm_numpy(
        self, twin: NumpyResidualMLP, obs_norm: np.ndarray, deterministic: bool, generator: torch.Generator | None
    ) -> np.ndarray:
        """`sample_chunk_norm` on the twin: obs_norm (B, To * Do) -> chunk (B, H * Da), float32 NumPy."""
        raise NotImplementedError(f"{type(self).__name__} mixes in NumpyFastPath but defines no sample_chunk_norm_numpy")

    @torch.inference_mode()  # ~4 µs; the policies' torch fallbacks (DPM-Solver, the Gaussian head) need it
    def predict_chunk(
        self, obs: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        twin = self.numpy_network(obs)
        if twin is None:
            return super().predict_chunk(obs, deterministic, generator)
        self.check_obs(obs)
        batch = obs.shape[0]
        obs_norm = (obs.numpy() - twin.obs_center) * twin.obs_inv_half_range
        chunk = self.sample_chunk_norm_numpy(twin, obs_norm.reshape(batch, -1), deterministic, generator)
        np.maximum(chunk, -1.0, out=chunk)  # two ufuncs: ~3x faster than np.clip on a small array
        np.minimum(chunk, 1.0, out=chunk)
        chunk *= twin.action_half_range
        chunk += twin.action_center
        return torch.from_numpy(chunk.reshape(batch, self.config.horizon, self.action_dim))

    def numpy_network(self, obs: torch.Tensor) -> NumpyResidualMLP | None:
        """The twin of `self.network` if sampling for `obs` should use it (see the module docstring), else None."""
        config: BackbonePolicyConfig = self.config
        if not (
            config.fast_inference
            and obs.shape[0] <= config.fast_inference_max_batch
            and isinstance(self.network, ResidualMLP)
            and isinstance(self.obs_encoder, FlattenObsEncoder)
            and obs.device.type == "cpu"
            and obs.dtype == torch.float32
        ):
            return None
        cached = self.__dict__.get("_numpy_twin")
        if cached is not None:
            parameters, versions, twin = cached
            if versions == [p._version for p in parameters]:
                return twin
        parameters = (*self.network.parameters(), *self.obs_normalizer.buffers(), *self.action_normalizer.buffers())
        versions = [p._version for p in parameters]
        twin = NumpyResidualMLP(self.network, self.obs_normalizer, self.action_normalizer)
        self.__dict__["_numpy_twin"] = (parameters, versions, twin)
        return twin

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
