"""The residual MLP's forward pass as one Numba-compiled function, for small-batch CPU inference.

Why a compiled kernel: at batch 1 the network is five mat-vecs (~18 µs each for 512x512 here, about
the L2/L3 bandwidth of this core) and ~30 elementwise steps. As separate NumPy calls those steps cost
~2-3 µs each in dispatch alone, ~45% of a call; fused into loops they cost a few µs together. The
kernel also releases the GIL (`nogil`), so a deploy process's control thread keeps running while
its planner thread samples a chunk.

Imported only when a policy first samples on the fast path (`fast_inference.py`): importing Numba
takes ~0.4 s, and the first compile ~7 s, after which the machine code is cached on disk.
The module name starts with "_" so that plugin discovery does not import it.

Weights come pre-folded by `fast_inference.NumpyResidualMLP`: every matrix is stored transposed
(one row per output) with one extra column that holds its bias, then zero padding to a whole number
of cache lines, and LayerNorm's gain and shift are folded into the matrix that follows the norm.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Fast-math without "nnan"/"ninf": reassociation lets LLVM vectorise the reductions, but NaN and inf
# must still propagate (a NaN input has to come out as NaN for the safety layer to see it).
_jit = numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"}, error_model="numpy")

# Above this, x tanh(softplus(x)) equals x in float32 (tanh(20) = 1 - 8e-18).
MISH_LINEAR_ABOVE = 20.0


@_jit
def add_matmul(x: np.ndarray, weight_t: np.ndarray, out: np.ndarray) -> None:
    """out (B, m) += x (B, k) @ W + b, with weight_t (m, ≥ k + 1) = [Wᵀ | b | padding]: one row per output.

    Each output is one dot product over a contiguous weight row (vectorised with reassociation),
    and the row is reused from L1 for every batch row, so the matrix is read from memory once per
    call. Against the row-update form (out += x_i W_i for each i, a store to `out` per weight row)
    it measured 15% faster on four bare 512x512 mat-vecs and 4% on a whole network call at batch
    1. Explicit loops: Numba array expressions allocate.
    """
    batch, k = x.shape
    for j in range(weight_t.shape[0]):
        row = weight_t[j]
        for b in range(batch):
            total = row[k]
            for i in range(k):
                total += row[i] * x[b, i]
            out[b, j] += total


@_jit
def standardize(h: np.ndarray, eps: float, out: np.ndarray) -> None:
    """out = (h - mean(h)) / sqrt(var(h) + eps) along the last axis, row by row: LayerNorm without its affine."""
    batch, n = h.shape
    for b in range(batch):
        total = np.float32(0.0)
        for j in range(n):
            total += h[b, j]
        mean = total / n
        var = np.float32(0.0)
        for j in range(n):
            centered = h[b, j] - mean
            out[b, j] = centered
            var += centered * centered
        inv_std = np.float32(1.0 / math.sqrt(var / n + eps))
        for j in range(n):
            out[b, j] *= inv_std


@_jit
def mish(v: float) -> float:
    """x tanh(softplus(x)). With e = exp(x), tanh(log(1 + e)) = (e² + 2e) / (e² + 2e + 2): one exp
    instead of exp, log and tanh. NaN passes through (the comparison is false)."""
    if v < MISH_LINEAR_ABOVE:
        e = math.exp(v)
        q = e * (e + 2.0)
        return v * q / (q + 2.0)
    return v


@_jit
def mish_(x: np.ndarray) -> None:
    """x (B, n) <- mish(x) in place."""
    batch, n = x.shape
    for b in range(batch):
        for j in range(n):
            x[b, j] = mish(x[b, j])


@_jit
def residual_mlp(
    chunk_in: np.ndarray,
    cond: np.ndarray,
    time_bias: np.ndarray,
    w_chunk: np.ndarray,
    w_norm_linear1: np.ndarray,
    w_linear2: np.ndarray,
    w_out: np.ndarray,
    eps: float,
    out: np.ndarray,
) -> None:
    """out (B, H*D_out) = ResidualMLP(chunk_in (B, H*D_in)), given its conditioning part of the input layer.

    cond (B, hidden) is the observation's part with the input bias (`add_matmul` of the raw observation
    with w_obs), time_bias (hidden,) the time embedding's part. Weights are stored transposed with
    the bias after the last weight column and zero padding (see `add_matmul`): w_chunk (hidden, ≥ H*D_in + 1),
    whose bias is zero; w_norm_linear1, w_linear2 (blocks, hidden, ≥ hidden + 1); w_out (H*D_out, ≥ hidden + 1).
        h = chunk_in @ W_chunk + cond + time_bias
        h = h + linear2(mish(linear1(LayerNorm(h))))      for every block
        out = output(LayerNorm(h))
    """
    h = cond + time_bias
    add_matmul(chunk_in, w_chunk, h)
    z = np.empty_like(h)
    u = np.empty_like(h)
    for block in range(w_norm_linear1.shape[0]):
        standardize(h, eps, z)
        u[:] = 0.0
        add_matmul(z, w_norm_linear1[block], u)
        mish_(u)
        add_matmul(u, w_linear2[block], h)
    standardize(h, eps, z)
    out[:] = 0.0
    add_matmul(z, w_out, out)


@_jit
def affine_step_(x: np.ndarray, out: np.ndarray, step: np.ndarray, noise: np.ndarray, clip: float) -> None:
    """One sampler step on x (B, H * D) in place, from the network's output out and the step's row
    [r_xt, r_out, c_x0, c_out, c_xt, sigma] (`fast_inference.AFFINE_STEP_COLUMNS`), noise (B, H * D):
        x0 = clip(r_xt x + r_out out, -clip, clip);  x = c_x0 x0 + c_out out + c_xt x + sigma noise
    """
    r_xt, r_out, c_x0, c_out, c_xt, sigma = step
    for b in range(x.shape[0]):
        for j in range(x.shape[1]):
            x0 = r_xt * x[b, j] + r_out * out[b, j]
            if x0 > clip:  # written out so that NaN passes through, as torch's clamp lets it
                x0 = clip
            elif x0 < -clip:
                x0 = -clip
            x[b, j] = c_x0 * x0 + c_out * out[b, j] + c_xt * x[b, j] + sigma * noise[b, j]


@_jit
def sample_affine(
    x: np.ndarray,
    obs: np.ndarray,
    w_obs: np.ndarray,
    time_bias: np.ndarray,
    steps: np.ndarray,
    noise: np.ndarray,
    clip: float,
    w_chunk: np.ndarray,
    w_norm_linear1: np.ndarray,
    w_linear2: np.ndarray,
    w_out: np.ndarray,
    eps: float,
) -> None:
    """Run K sampler steps on x (B, H*D) in place, conditioned on the raw observation obs (B, To*Do).

    w_obs (hidden, ≥ To*Do + 1) is the input layer's observation part with the observation normaliser
    and the input bias folded in; step k adds time_bias[k] (hidden,). Every built-in sampler step is
    one network call and one affine update; `steps` (K, 6) holds its constants
    [r_xt, r_out, c_x0, c_out, c_xt, sigma] (see `fast_inference.AFFINE_STEP_COLUMNS`):
        out = network(x, obs, t_k)
        x0  = clip(r_xt x + r_out out, -clip, clip)
        x   = c_x0 x0 + c_out out + c_xt x + sigma noise[k]
    """
    cond = np.zeros((x.shape[0], w_obs.shape[0]), np.float32)
    add_matmul(obs, w_obs, cond)
    out = np.empty_like(x)
    for k in range(steps.shape[0]):
        residual_mlp(x, cond, time_bias[k], w_chunk, w_norm_linear1, w_linear2, w_out, eps, out)
        affine_step_(x, out, steps[k], noise[k], clip)


@_jit
def clamp_unnormalize_(chunk: np.ndarray, center: np.ndarray, half_range: np.ndarray) -> None:
    """chunk (B, H*D) <- clamp(chunk, -1, 1) * half_range + center, in place (NaN passes through)."""
    batch, width = chunk.shape
    for b in range(batch):
        for j in range(width):
            v = chunk[b, j]
            if v > 1.0:
                v = 1.0
            elif v < -1.0:
                v = -1.0
            chunk[b, j] = v * half_range[j] + center[j]
