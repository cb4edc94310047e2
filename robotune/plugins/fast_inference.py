"""NumPy twins of the residual MLP and the 1-D U-Net, and the rule for when a policy samples with one.

Why: at batch 1 on a CPU core, a chunk sampler is dominated by per-op framework overhead, not by
arithmetic. Measured on the 2-core development machine (0.97M-parameter 4x512 MLP, one thread): one
eager torch call ~136 µs against ~40 µs for the same four mat-vecs in NumPy, and a diffusers
`step()` costs about as much again as the network call. torch.compile gave nothing at batch 1. The
twin holds the same function as float32 NumPy arrays, with LayerNorm affines, biases and the
observation normaliser folded into the weight matrices, and the time embedding's part of the input
layer precomputed once per set of sampler times. It runs as Numba-compiled functions that release
the GIL (`_mlp_kernel.py`; NumPy ufuncs for the same steps spent ~45% of a call in dispatch). A
sampler whose steps are each one network call and an affine update (DDIM, DDPM, Euler flow) runs all
its steps in one compiled call (`sample`); each policy's file states its sampler's constants next to
its torch loop. On the default 1.16M-parameter denoiser, DDIM-10 at batch 1 takes ~1.04-1.11 ms
(p50) here, 7.5-9.3x less than the diffusers step() loop (`benchmarks/inference_latency.py`).

The U-Net (Diffusion Policy's backbone) has its own twin, `NumpyConditionalUnet1D`, with the same
interface: its convolutions are compiled dot products over channels-last buffers (`_unet_kernel.py`
says why torch is slow there), GroupNorm, Mish and FiLM fused into one pass, and the FiLM vectors
split into an observation part computed once per chunk and a time part computed once per set of
sampler times. On the default 4.1M-parameter U-Net, a DDIM-10 chunk at batch 1 takes 5.7-7.9x less time
than the torch policy (`benchmarks/unet_speed.py`).

When: only through an explicit export. `policy.export_for_inference()` of a policy built on
`ResidualMLP` or `ConditionalUnet1D` with the "flatten" observation encoder (and `fast_inference`
on) returns an `ExportedPolicy`: the weights frozen into the twin at that moment, with a
`predict_chunk` that runs CPU float32 batches of at most `fast_inference_max_batch` on the twin and
larger ones on the torch policy (larger batches are matmul-bound, where torch's kernels are as fast
or faster). Evaluation and deployment export; training, RL fine-tuning and `Policy.predict_chunk`
itself always run the torch model. Both paths draw their noise from the same torch generator in the
same order, so they return the same chunk up to float32 rounding (tests hold them to 1e-4).

An export is a snapshot: weights changed afterwards (an optimizer step, `load_state_dict`) do not
reach it. Export again after changing them; evaluation exports at every call.
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import torch
from torch import nn

from robotune.core.normalization import Normalizer
from robotune.plugins.networks import (
    LAYER_NORM_EPS,
    BackbonePolicyConfig,
    ConditionalUnet1D,
    ConvBlock,
    FiLMResidualBlock,
    FlattenObsEncoder,
    ResidualMLP,
)


def _fold_layer_norm(norm: nn.LayerNorm, linear: nn.Linear) -> np.ndarray:
    """Linear(LayerNorm(h)) as one matrix acting on the standardised h, in `_with_bias_row`'s layout.

    LayerNorm's gain g and shift β are affine, so they fold into the next layer:
    (z g + β) Wᵀ + b = z (diag(g) Wᵀ) + (β Wᵀ + b), with z the standardised h.
    """
    weight = linear.weight.detach().double().T  # (in, out)
    gain, shift = norm.weight.detach().double(), norm.bias.detach().double()
    folded_bias = shift @ weight + linear.bias.detach().double()
    return _with_bias_row(gain[:, None] * weight, folded_bias)


FLOATS_PER_CACHE_LINE = 16  # 64 bytes of float32


def _with_bias_row(weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """(in, out) weight and (out,) bias -> the kernel's layout: (out, ≥ in + 1), transposed, bias after the weights."""
    return _aligned_stack([torch.cat([weight, bias[None, :]]).T.float().numpy()])[0]


def _aligned_stack(matrices: list[np.ndarray]) -> np.ndarray:
    """(n, rows, padded) float32: each row zero-padded to whole 64-byte cache lines, starting on one.

    The kernel only reads a row's first in + 1 values; aligned rows make its vector loads whole
    (~5% less time per chunk here, same results).
    """
    count, (rows, width) = len(matrices), matrices[0].shape
    padded = -(-width // FLOATS_PER_CACHE_LINE) * FLOATS_PER_CACHE_LINE
    size = count * rows * padded
    buffer = np.zeros(size + FLOATS_PER_CACHE_LINE, np.float32)
    start = (-buffer.ctypes.data % 64) // 4  # float32 elements to the first cache-line boundary
    stacked = buffer[start : start + size].reshape(count, rows, padded)
    for out, matrix in zip(stacked, matrices):
        out[:, :width] = matrix
    return stacked


class NumpyTwin:
    """What the NumPy twins share: the action normaliser per element of a flat (B, H * Da) chunk, and the final clamp."""

    def __init__(self, horizon: int, action_normalizer: Normalizer) -> None:
        self.action_center = np.tile(action_normalizer.center.float().numpy(), horizon)
        self.action_half_range = np.tile(action_normalizer.half_range.float().numpy(), horizon)

    def clamp_unnormalize_(self, chunk_norm: np.ndarray) -> np.ndarray:
        """(B, H * Da) normalised chunk -> the action chunk, in place: clamp to [-1, 1], then unnormalise."""
        _kernel().clamp_unnormalize_(chunk_norm, self.action_center, self.action_half_range)
        return chunk_norm

    @staticmethod
    def _sampler_arrays(x: np.ndarray, steps: np.ndarray, noise: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`sample`'s arrays as its compiled sampler takes them: x a fresh float32 copy (the kernel writes
        into it), steps float64, noise float32 (zeros where not given)."""
        x = np.array(x, np.float32, order="C")
        noise = np.zeros((len(steps), *x.shape), np.float32) if noise is None else np.ascontiguousarray(noise, np.float32)
        return x, np.ascontiguousarray(steps, np.float64), noise


class NumpyResidualMLP(NumpyTwin):
    """The function of a trained ResidualMLP in float32 NumPy, with the policy's normalisers, for small-batch CPU inference.

    Built once from the module's weights: LayerNorm affines and every bias are folded into weight
    matrices with one extra column, and so is the observation normaliser, into the input layer's
    observation part: ((o - c) / r) W = o (W / r) - (c / r) W. The twin thus takes raw
    observations. The time embedding's part of the input layer is computed once per set of sampler
    times (`time_bias`). Each sampler then runs as one compiled call (`_mlp_kernel`).
    """

    def __init__(self, net: ResidualMLP, obs_normalizer: Normalizer, action_normalizer: Normalizer) -> None:
        chunk_width = net.horizon * net.in_channels
        if net.cond_dim % obs_normalizer.dim:
            raise ValueError(
                f"the network's cond_dim {net.cond_dim} is not a whole number of {obs_normalizer.dim}-dim observations"
            )
        super().__init__(net.horizon, action_normalizer)
        obs_horizon = net.cond_dim // obs_normalizer.dim
        with torch.no_grad():
            weight = net.input.weight.detach().double().T  # (chunk + cond + time, hidden)
            chunk_rows, obs_rows = weight[:chunk_width], weight[chunk_width : chunk_width + net.cond_dim]
            self.w_chunk = _with_bias_row(chunk_rows, torch.zeros(weight.shape[1], dtype=torch.float64))
            obs_center = obs_normalizer.center.double().repeat(obs_horizon)
            obs_half_range = obs_normalizer.half_range.double().repeat(obs_horizon)
            folded_bias = net.input.bias.detach().double() - (obs_center / obs_half_range) @ obs_rows
            self.w_obs = _with_bias_row(obs_rows / obs_half_range[:, None], folded_bias)
            w_time = weight[chunk_width + net.cond_dim :].float()
            time_embedding = copy.deepcopy(net.time_embedding)  # a snapshot, like the weights
            self._time_rows = (lambda t: time_embedding(t) @ w_time) if time_embedding is not None else None
            # Per block, stacked: LayerNorm+linear1 and linear2, each (hidden, ≥ hidden + 1) with its bias column.
            self.w_norm_linear1 = _aligned_stack([_fold_layer_norm(block.norm, block.linear1) for block in net.blocks])
            self.w_linear2 = _aligned_stack([
                _with_bias_row(block.linear2.weight.detach().double().T, block.linear2.bias.detach().double())
                for block in net.blocks
            ])
            self.w_out = _fold_layer_norm(net.output_norm, net.output)
        self._time_biases: dict[tuple[float, ...] | None, np.ndarray] = {}

    def time_bias(self, times: tuple[float, ...] | None) -> np.ndarray:
        """(K, hidden): the time embedding's part of the input layer at each of the K sampler times (zeros if None)."""
        if times not in self._time_biases:
            if times is None or self._time_rows is None:
                self._time_biases[times] = np.zeros((1 if times is None else len(times), self.w_obs.shape[0]), np.float32)
            else:
                with torch.no_grad():
                    self._time_biases[times] = self._time_rows(torch.tensor(times, dtype=torch.float32)).numpy().copy()
        return self._time_biases[times]

    def __call__(self, chunk_in_flat: np.ndarray | None, obs: np.ndarray, time: float | None = None) -> np.ndarray:
        """One network call: chunk_in_flat (B, H * D_in) or None, raw obs (B, To * Do) -> (B, H * D_out), float32."""
        kernel = _kernel()
        obs = np.ascontiguousarray(obs, np.float32)
        cond = np.zeros((obs.shape[0], self.w_obs.shape[0]), np.float32)
        kernel.add_matmul(obs, self.w_obs, cond)
        if chunk_in_flat is None:  # a network without chunk input
            chunk_in_flat = np.empty((obs.shape[0], 0), np.float32)
        out = np.empty((obs.shape[0], self.w_out.shape[0]), np.float32)
        time_bias = self.time_bias(None if time is None else (time,))[0]
        kernel.residual_mlp(
            np.ascontiguousarray(chunk_in_flat, np.float32),
            cond,
            time_bias,
            self.w_chunk,
            self.w_norm_linear1,
            self.w_linear2,
            self.w_out,
            LAYER_NORM_EPS,
            out,
        )
        return out

    def sample(
        self,
        obs: np.ndarray,
        x: np.ndarray,
        times: tuple[float, ...],
        steps: np.ndarray,
        noise: np.ndarray | None = None,
        clip: float = math.inf,
    ) -> np.ndarray:
        """Run a sampler given as K affine steps on the chunk x (B, H * D), in one compiled call; returns x.

        obs (B, To * Do) raw; times: the network's time input at each step; steps (K, 6) with columns
        AFFINE_STEP_COLUMNS; noise (K, B, H * D) for steps with sigma > 0 (drawn by the caller, in the
        torch path's order). Step k: out = network(x, obs, t_k); x0 = clip(r_xt x + r_out out);
        x = c_x0 x0 + c_out out + c_xt x + sigma z_k.
        """
        x, steps, noise = self._sampler_arrays(x, steps, noise)
        _kernel().sample_affine(
            x,
            np.ascontiguousarray(obs, np.float32),
            self.w_obs,
            self.time_bias(times),
            steps,
            noise,
            clip,
            self.w_chunk,
            self.w_norm_linear1,
            self.w_linear2,
            self.w_out,
            LAYER_NORM_EPS,
        )
        return x


class NumpyConditionalUnet1D(NumpyTwin):
    """The function of a trained ConditionalUnet1D in float32 NumPy and compiled code, with the policy's normalisers.

    The same interface as `NumpyResidualMLP` (`__call__`, `sample`, `clamp_unnormalize_`), so every
    policy's `sample_chunk_norm_numpy` runs on either. Built once from the module's weights: every
    convolution tap-major, (C_out, kernel * C_in), in one flat vector with an index table (the
    layout `_unet_kernel` documents); transposed convolutions in their polyphase form; the FiLM
    layers of all blocks stacked, split into their observation part (a matrix applied once per
    chunk) and their time part (precomputed once per set of sampler times, `film_time`).
    """

    def __init__(self, net: ConditionalUnet1D, obs_normalizer: Normalizer, action_normalizer: Normalizer) -> None:
        if net.cond_dim % obs_normalizer.dim:
            raise ValueError(
                f"the network's cond_dim {net.cond_dim} is not a whole number of {obs_normalizer.dim}-dim observations"
            )
        super().__init__(net.horizon, action_normalizer)
        obs_horizon = net.cond_dim // obs_normalizer.dim
        self.horizon, self.out_channels = net.horizon, net.out_channels
        self._time_embedding = copy.deepcopy(net.time_embedding)  # a snapshot, like the weights
        pieces: list[torch.Tensor] = []
        convs, norms, films = [], [], []

        def add(tensor: torch.Tensor) -> int:
            offset = sum(piece.numel() for piece in pieces)
            pieces.append(tensor.detach().float().reshape(-1))
            return offset

        def add_conv(weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int) -> None:
            """weight (C_out, C_in, kernel), stored tap-major."""
            out_channels, in_channels, kernel = weight.shape
            convs.append((add(weight.permute(0, 2, 1)), out_channels, kernel, in_channels, stride, padding))
            add(bias)

        def add_conv_block(block: ConvBlock) -> None:
            add_conv(block.conv.weight, block.conv.bias, 1, block.conv.padding[0])
            norms.append((add(block.norm.weight), block.norm.num_groups, block.norm.num_channels))
            add(block.norm.bias)

        def add_film_block(block: FiLMResidualBlock) -> None:
            add_conv_block(block.conv1)
            add_conv_block(block.conv2)
            if isinstance(block.skip, nn.Conv1d):
                add_conv(block.skip.weight, block.skip.bias, 1, 0)
            films.append(block.film[1])

        def add_transposed(up: nn.ConvTranspose1d) -> None:
            """Kernel 4, stride 2, padding 1 as a kernel-3 conv with [even, odd] outputs: output 2j is
            x_{j-1} W_3 + x_j W_1, output 2j + 1 is x_j W_2 + x_{j+1} W_0 (W_k: (C_in, C_out) tap k)."""
            w = up.weight.permute(2, 1, 0)  # (tap, C_out, C_in)
            zero = torch.zeros_like(w[0])
            even, odd = torch.stack([w[3], w[1], zero], dim=2), torch.stack([zero, w[2], w[0]], dim=2)
            add_conv(torch.cat([even, odd]), torch.cat([up.bias, up.bias]), 1, 1)

        with torch.no_grad():
            for block1, block2, downsample in net.down:
                add_film_block(block1)
                add_film_block(block2)
                if isinstance(downsample, nn.Conv1d):
                    add_conv(downsample.weight, downsample.bias, 2, 1)
            for block in net.middle:
                add_film_block(block)
            for block1, block2, upsample in net.up:
                add_film_block(block1)
                add_film_block(block2)
                add_transposed(upsample)
            add_conv_block(net.final[0])
            add_conv(net.final[1].weight, net.final[1].bias, 1, 0)
            film_weight = torch.cat([film.weight for film in films]).double()  # (F, time_dim + cond_dim): time first
            self._film_bias = torch.cat([film.bias for film in films]).float()
            self._w_film_time = film_weight[:, : net.time_embed_dim].float()
            w_film_obs = _with_bias_row(film_weight[:, net.time_embed_dim :].T, torch.zeros(film_weight.shape[0], dtype=torch.float64))
            self.weights = _kernel_unet().UnetWeights(
                weights=torch.cat(pieces).numpy(),
                convs=np.array(convs, np.int64),
                norms=np.array(norms, np.int64),
                channels=np.array(net.channels, np.int64),
                position_code=np.ascontiguousarray(net.position_code.detach().float().T.numpy()),
                w_film_obs=w_film_obs,
                obs_center=obs_normalizer.center.float().repeat(obs_horizon).numpy(),
                obs_half_range=obs_normalizer.half_range.float().repeat(obs_horizon).numpy(),
                in_channels=net.in_channels,
                pad=max(net.kernel_size // 2, 1),
                eps=float(net.final[0].norm.eps),
            )
        self._film_times: dict[tuple[float, ...] | None, np.ndarray] = {}

    def film_time(self, times: tuple[float, ...] | None) -> np.ndarray:
        """(K, F): FiLM's time part plus its biases, at each of the K sampler times (the biases alone if None)."""
        if times not in self._film_times:
            with torch.no_grad():
                if times is None or self._time_embedding is None:
                    rows = self._film_bias.expand(1 if times is None else len(times), -1)
                else:
                    embedding = nn.functional.mish(self._time_embedding(torch.tensor(times, dtype=torch.float32)))
                    rows = embedding @ self._w_film_time.T + self._film_bias
                self._film_times[times] = np.ascontiguousarray(rows.numpy(), np.float32)
        return self._film_times[times]

    def __call__(self, chunk_in_flat: np.ndarray | None, obs: np.ndarray, time: float | None = None) -> np.ndarray:
        """One network call: chunk_in_flat (B, H * D_in) or None, raw obs (B, To * Do) -> (B, H * D_out), float32."""
        obs = np.ascontiguousarray(obs, np.float32)
        if chunk_in_flat is None:
            chunk_in_flat = np.empty((obs.shape[0], 0), np.float32)
        out = np.empty((obs.shape[0], self.horizon * self.out_channels), np.float32)
        film_time = self.film_time(None if time is None else (time,))[0]
        _kernel_unet().network(self.weights, np.ascontiguousarray(chunk_in_flat, np.float32), obs, film_time, out)
        return out

    def sample(
        self,
        obs: np.ndarray,
        x: np.ndarray,
        times: tuple[float, ...],
        steps: np.ndarray,
        noise: np.ndarray | None = None,
        clip: float = math.inf,
    ) -> np.ndarray:
        """`NumpyResidualMLP.sample` on the U-Net: K affine steps on x (B, H * D) in one compiled call; returns x."""
        x, steps, noise = self._sampler_arrays(x, steps, noise)
        _kernel_unet().sample_affine(self.weights, x, np.ascontiguousarray(obs, np.float32), self.film_time(times), steps, noise, clip)
        return x


# The NumPy twin of each network that has one.
TWINS = {ResidualMLP: NumpyResidualMLP, ConditionalUnet1D: NumpyConditionalUnet1D}

# Columns of a sampler step table for `NumpyResidualMLP.sample`, which documents the update.
AFFINE_STEP_COLUMNS = ("r_xt", "r_out", "c_x0", "c_out", "c_xt", "sigma")


@functools.cache
def _kernel():
    """The compiled forward pass (`_mlp_kernel`), imported on first use: Numba is slow to import."""
    from robotune.plugins import _mlp_kernel

    return _mlp_kernel


@functools.cache
def _kernel_unet():
    """The U-Net's compiled forward pass and sampler (`_unet_kernel`), imported on first use."""
    from robotune.plugins import _unet_kernel

    return _unet_kernel


class FastInference:
    """Mixin for a Policy with `self.network` and `self.obs_encoder` that can sample on the NumPy twin.

    Adds `export_for_inference` (see the module docstring) and nothing else: the policy's own
    methods stay the torch model's. Subclasses implement `sample_chunk_norm_numpy`.
    """

    def sample_chunk_norm_numpy(
        self, twin: NumpyTwin, obs: np.ndarray, deterministic: bool, generator: torch.Generator | None
    ) -> np.ndarray:
        """`sample_chunk_norm` on the twin: raw obs (B, To * Do) -> normalised chunk (B, H * Da), float32 NumPy."""
        raise NotImplementedError(f"{type(self).__name__} mixes in FastInference but defines no sample_chunk_norm_numpy")

    def export_for_inference(self):
        """An `ExportedPolicy` running on the twin, or the policy itself (in eval mode) if the twin does not apply."""
        config: BackbonePolicyConfig = self.config
        self.eval()
        if not (config.fast_inference and type(self.network) in TWINS and isinstance(self.obs_encoder, FlattenObsEncoder)):
            return self
        if any(not p.is_cpu or p.dtype != torch.float32 for p in self.parameters()):
            return self
        return ExportedPolicy(self)


class ExportedPolicy:
    """A policy's weights frozen into the NumPy twin, for evaluation and deployment.

    `predict_chunk` runs end to end in NumPy and compiled code for small CPU float32 batches: the
    policy's `sample_chunk_norm_numpy` on the raw observation (the twin folds the observation
    normaliser into its input layer), then one compiled clamp-and-unnormalise, with no torch op on
    the way. Right after a kernel call Python runs on cold caches: the ~8 NumPy and torch ops this
    replaced took ~90 µs of a 330 µs two-call MIP chunk. Other batches go to the torch policy.
    Everything else (config, spec, reset, ...) is read from the wrapped policy.
    """

    def __init__(self, policy) -> None:
        self.policy = policy
        self.twin = TWINS[type(policy.network)](policy.network, policy.obs_normalizer, policy.action_normalizer)
        self.max_batch = policy.config.fast_inference_max_batch

    def __getattr__(self, name: str):
        return getattr(self.policy, name)

    def predict_chunk(
        self, obs: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Raw action chunk (B, H, Da) for raw obs (B, To, Do), as `Policy.predict_chunk`."""
        policy = self.policy
        policy.check_obs(obs)
        if not (obs.shape[0] <= self.max_batch and obs.is_cpu and obs.dtype == torch.float32):
            return policy.predict_chunk(obs, deterministic, generator)
        batch = obs.shape[0]
        chunk_norm = policy.sample_chunk_norm_numpy(self.twin, obs.numpy().reshape(batch, -1), deterministic, generator)
        chunk = self.twin.clamp_unnormalize_(chunk_norm).reshape(batch, policy.config.horizon, policy.action_dim)
        return torch.from_numpy(chunk)
