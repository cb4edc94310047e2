"""Diffusion Policy (Chi et al., RSS 2023): a chunk denoised from Gaussian noise, conditioned on observations.

Training (DDPM, Ho et al. 2020): pick t ~ U{0..T-1} and ε ~ N(0, I), form
    a_t = sqrt(ᾱ_t) a + sqrt(1 - ᾱ_t) ε            (diffusers' DDPMScheduler.add_noise)
and regress the network on ε (`prediction_type="epsilon"`) or on a itself (`"sample"`), MSE.

Sampling runs `num_inference_steps` of DDIM or DDPM. Every step of either is one network call and
the same affine update with per-step constants, precomputed once from the noise schedule ᾱ and the
inference timesteps:
    x0 = clip(r_xt[k] x + r_out[k] out, -1, 1)
    x  = c_x0[k] x0 + c_out[k] out + c_xt[k] x + sigma[k] z,      z ~ N(0, I)
This reproduces diffusers' `step()` (tests check it) without its per-step Python and tensor
bookkeeping, which costs as much as the network call itself at batch 1. ᾱ and the timesteps are
computed here with diffusers' formulas (tests hold them equal to its schedulers' tables), because
importing diffusers takes ~2.6 s (it loads torch._dynamo), which `robotune deploy` would wait for
before its first command; diffusers is imported only to train (`DDPMScheduler.add_noise`) and for
other diffusers schedulers (`"dpmsolver"`), which run through their own `step()`.

Deterministic sampling is DDIM with eta = 0 on the configured timesteps, whatever `scheduler` says:
the initial noise still comes from the generator, so a seeded generator repeats exactly.

Likelihood for policy-gradient fine-tuning (DPPO, Ren et al. 2024): sampling with DDIM at
eta = `rl_eta` makes every denoising step a Gaussian, x_{k+1} ~ N(μ_k(x_k, o), σ_k²) with μ_k the same
affine update as above and σ_k = max(sigma[k], `rl_min_std`), from the same coefficient table. The
trace is the chain x_0 (noise) .. x_K (the chunk), and
    log π(chain | o) = Σ_k log N(x_{k+1}; μ_k, σ_k²)
over the chunk's first act_steps actions, all K steps scored in one batched network call.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy
from robotune.core.registry import register
from robotune.core.spec import TaskSpec
from robotune.plugins.fast_inference import AFFINE_STEP_COLUMNS, FastInference, NumpyTwin
from robotune.plugins.networks import BackbonePolicyConfig, make_chunk_network, make_obs_encoder

# name -> diffusers scheduler class, imported on first use: importing diffusers takes ~2.6 s (it loads torch._dynamo).
SCHEDULERS = {"ddim": "DDIMScheduler", "ddpm": "DDPMScheduler", "dpmsolver": "DPMSolverMultistepScheduler"}
PRECOMPUTED_SCHEDULERS = ("ddim", "ddpm")  # the ones whose step() `step_coefficients` reproduces
PREDICTION_TYPES = ("epsilon", "sample")
# The β schedules that diffusers' DDIM and DDPM schedulers share (`alphas_cumprod` computes them),
# with diffusers' default β range for the linear ones.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
BETA_START, BETA_END = 0.0001, 0.02
MAX_BETA = 0.999  # the cosine schedule's cap on β_t (Nichol & Dhariwal 2021, eq. 17)


@dataclass
class DiffusionConfig(BackbonePolicyConfig):
    num_train_timesteps: int = 100  # T of the DDPM forward process (Diffusion Policy uses 100)
    beta_schedule: str = "squaredcos_cap_v2"  # the cosine schedule of Nichol & Dhariwal; or "linear", "scaled_linear"
    # "sample" (predict the clean chunk x0) or "epsilon" (predict the noise). x0 by default: on reach_around
    # (BC, 3000 steps, 256-wide MLP) it reached 100% success against 70% for epsilon, which often
    # blended the two modes into a path through the post (benchmarks/bc_results.py reproduces this).
    prediction_type: str = "sample"
    scheduler: str = "ddim"  # sampler: "ddim", "ddpm" or "dpmsolver" (diffusers' DPMSolverMultistepScheduler)
    num_inference_steps: int = 10  # denoising steps (network calls) per chunk
    ddim_eta: float = 0.0  # DDIM noise scale for stochastic sampling; deterministic sampling always uses 0
    clip_sample: bool = True  # clip the predicted x0 to [-1, 1] at every step, as Diffusion Policy does
    compile: bool = False  # torch.compile the denoiser used by the torch sampler (pays off on GPU, not at CPU batch 1)
    rl_eta: float = 1.0  # DDIM noise scale when sampling for policy-gradient RL (DPPO samples with eta = 1)
    # Floor on every denoising step's std when sampling and scoring for RL: DPPO found that letting
    # the last steps' tiny stds through makes the log-probability ratio explode (its default is 0.1).
    rl_min_std: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"policy.scheduler must be one of {sorted(SCHEDULERS)}, got '{self.scheduler}'")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"policy.beta_schedule must be one of {BETA_SCHEDULES}, got '{self.beta_schedule}'")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"policy.prediction_type must be one of {PREDICTION_TYPES}, got '{self.prediction_type}'")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(
                f"policy.num_inference_steps ({self.num_inference_steps}) must be in "
                f"[1, policy.num_train_timesteps={self.num_train_timesteps}]"
            )


@dataclass(frozen=True)
class StepCoefficients:
    """Per-step constants of the affine sampler update (see the module docstring), one entry per step.

    Python floats on purpose: a NumPy float64 scalar would promote float32 arrays to float64.
    """

    timesteps: tuple[int, ...]  # the network's time input at each step
    r_xt: tuple[float, ...]
    r_out: tuple[float, ...]
    c_x0: tuple[float, ...]
    c_out: tuple[float, ...]
    c_xt: tuple[float, ...]
    sigma: tuple[float, ...]

    @functools.cached_property
    def table(self) -> np.ndarray:
        """(steps, 6) in the column order of the twin's compiled sampler (`AFFINE_STEP_COLUMNS`)."""
        return np.array([getattr(self, column) for column in AFFINE_STEP_COLUMNS], np.float64).T


def make_scheduler(config: DiffusionConfig, name: str | None = None):
    """A fresh diffusers scheduler for this config (`name` overrides `config.scheduler`)."""
    name = name or config.scheduler
    kwargs = dict(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
    )
    if name != "dpmsolver":  # DPM-Solver has thresholding instead of clipping
        kwargs["clip_sample"] = config.clip_sample
    import diffusers

    return getattr(diffusers, SCHEDULERS[name])(**kwargs)


def alphas_cumprod(config: DiffusionConfig) -> np.ndarray:
    """ᾱ_t = Π_{s ≤ t} (1 - β_s) for t = 0 .. T-1, float64 holding the float32 table diffusers' schedulers compute.

    The same operations in the same precision as diffusers, so the values are identical, not just close.
    """
    steps = config.num_train_timesteps
    if config.beta_schedule == "linear":
        betas = torch.linspace(BETA_START, BETA_END, steps, dtype=torch.float32)
    elif config.beta_schedule == "scaled_linear":
        betas = torch.linspace(BETA_START**0.5, BETA_END**0.5, steps, dtype=torch.float32) ** 2
    else:  # squaredcos_cap_v2: β_t = 1 - ᾱ(t+1)/ᾱ(t) with ᾱ(t) = cos²((t/T + s)/(1 + s) π/2), s = 0.008

        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = torch.tensor([min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), MAX_BETA) for i in range(steps)],
                             dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0).double().numpy()


def inference_timesteps(config: DiffusionConfig) -> np.ndarray:
    """The `num_inference_steps` timesteps sampling visits, descending: diffusers' "leading" spacing
    (its default), t_k = (n - 1 - k) * (T // n)."""
    step_ratio = config.num_train_timesteps // config.num_inference_steps
    return np.arange(config.num_inference_steps, dtype=np.int64)[::-1] * step_ratio


def step_coefficients(config: DiffusionConfig, sampler: str, eta: float) -> StepCoefficients:
    """Constants for `sampler` ("ddim" with `eta`, or "ddpm") on the configured inference timesteps.

    Equations: DDIM is Song et al. 2021 eq. 12; DDPM is the posterior mean of Ho et al. 2020 eq. 7
    with the "fixed_small" variance. Both take ᾱ = 1 before the first timestep, as diffusers'
    defaults do.
    """
    timesteps = inference_timesteps(config)
    alphas = alphas_cumprod(config)
    rows = []
    for k, t in enumerate(timesteps):
        a_t = alphas[t]
        a_prev = alphas[timesteps[k + 1]] if k + 1 < len(timesteps) else 1.0
        if config.prediction_type == "epsilon":  # x0 = (x - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)
            r_xt, r_out = 1 / np.sqrt(a_t), -np.sqrt(1 - a_t) / np.sqrt(a_t)
        else:
            r_xt, r_out = 0.0, 1.0
        if sampler == "ddim":
            sigma = eta * np.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
            direction = np.sqrt(max(1 - a_prev - sigma**2, 0.0))  # coefficient of the predicted ε
            if config.prediction_type == "epsilon":
                c_out, c_xt = direction, 0.0
            else:  # ε from the unclipped x0: (x - sqrt(ᾱ_t) out) / sqrt(1 - ᾱ_t)
                c_out, c_xt = -direction * np.sqrt(a_t) / np.sqrt(1 - a_t), direction / np.sqrt(1 - a_t)
            c_x0 = np.sqrt(a_prev)
        elif sampler == "ddpm":
            beta_t = 1 - a_t / a_prev
            c_x0 = np.sqrt(a_prev) * beta_t / (1 - a_t)
            c_out, c_xt = 0.0, np.sqrt(1 - beta_t) * (1 - a_prev) / (1 - a_t)
            sigma = np.sqrt(max((1 - a_prev) / (1 - a_t) * beta_t, 1e-20)) if t > 0 else 0.0
        else:
            raise ValueError(f"no precomputed coefficients for scheduler '{sampler}'; use one of {PRECOMPUTED_SCHEDULERS}")
        rows.append((r_xt, r_out, c_x0, c_out, c_xt, sigma))
    columns = [tuple(float(v) for v in column) for column in zip(*rows)]
    return StepCoefficients(tuple(int(t) for t in timesteps), *columns)


@register("policy", "diffusion")
class DiffusionPolicy(FastInference, Policy):
    """Denoising diffusion over the normalised action chunk, conditioned on the encoded observation history."""

    config_class: ClassVar[type[DiffusionConfig]] = DiffusionConfig
    config: DiffusionConfig

    def __init__(self, config: DiffusionConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        self.obs_encoder = make_obs_encoder(config, spec.obs_dim)
        self.network = make_chunk_network(
            config, in_channels=spec.action_dim, out_channels=spec.action_dim, cond_dim=self.obs_encoder.out_dim, uses_time=True
        )
        self._coefficients: dict[bool | str, StepCoefficients] = {}  # by deterministic flag, and "rl"
        self._schedulers: dict[str, object] = {}  # for sample_chunk_norm_with_scheduler, built once per name
        # Compiled lazily and kept out of the module tree so the state dict has no duplicate keys.
        self._compiled_network = None

    # ------------------------------------------------------------------ training

    @functools.cached_property
    def train_scheduler(self):
        """diffusers' DDPM scheduler for the forward process, built on first use: inference never needs it."""
        return make_scheduler(self.config, "ddpm")

    def compute_loss(
        self, obs_norm: torch.Tensor, action_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """obs_norm (B, To, Do), action_norm (B, H, Da) -> MSE on ε or x0 at a random timestep."""
        batch = action_norm.shape[0]
        noise = torch.randn(action_norm.shape, generator=generator, device=action_norm.device)
        t = torch.randint(0, self.config.num_train_timesteps, (batch,), generator=generator, device=action_norm.device)
        noisy = self.train_scheduler.add_noise(action_norm, noise, t)
        prediction = self.network(noisy, self.obs_encoder(obs_norm), t)
        target = noise if self.config.prediction_type == "epsilon" else action_norm
        loss = nn.functional.mse_loss(prediction, target)
        return loss, {"loss": loss.item()}

    # ------------------------------------------------------------------ sampling

    def coefficients(self, deterministic: bool) -> StepCoefficients:
        """The sampler constants, computed once per mode."""
        if deterministic not in self._coefficients:
            if deterministic:
                self._coefficients[deterministic] = step_coefficients(self.config, "ddim", eta=0.0)
            else:
                self._coefficients[deterministic] = step_coefficients(self.config, self.config.scheduler, self.config.ddim_eta)
        return self._coefficients[deterministic]

    def _denoiser(self):
        if not self.config.compile:
            return self.network
        if self._compiled_network is None:
            self._compiled_network = torch.compile(self.network.forward, dynamic=False)
        return self._compiled_network

    def sample_chunk_norm(self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """obs_norm (B, To, Do) -> chunk (B, H, Da) in [-1, 1]."""
        if not deterministic and self.config.scheduler not in PRECOMPUTED_SCHEDULERS:
            return self.sample_chunk_norm_with_scheduler(obs_norm, deterministic, generator)
        shape = (obs_norm.shape[0], self.config.horizon, self.action_dim)
        noise = torch.randn(shape, generator=generator, device=obs_norm.device)
        return self._denoise(obs_norm, noise, self.coefficients(deterministic), generator)

    def chunk_from_noise(self, obs_norm: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The deterministic sampler (DDIM, η = 0) from a given initial noise (B, H, Da) -> chunk (B, H, Da).

        A deterministic map (observation, noise) -> chunk: the black box that DSRL steers (dsrl.py)."""
        return self._denoise(obs_norm, noise, self.coefficients(True), None)

    def _denoise(self, obs_norm: torch.Tensor, x: torch.Tensor, coef: StepCoefficients, generator: torch.Generator | None) -> torch.Tensor:
        """The affine sampler steps of the module docstring from x = x_0 (B, H, Da)."""
        denoiser = self._denoiser()
        cond = self.obs_encoder(obs_norm)
        batch = obs_norm.shape[0]
        clip = 1.0 if self.config.clip_sample else float("inf")
        for k, t in enumerate(coef.timesteps):
            out = denoiser(x, cond, torch.full((batch,), t, device=x.device))
            x0 = (coef.r_xt[k] * x + coef.r_out[k] * out).clamp_(-clip, clip)
            x = coef.c_x0[k] * x0 + coef.c_out[k] * out + coef.c_xt[k] * x
            if coef.sigma[k] > 0:
                x += coef.sigma[k] * torch.randn(x.shape, generator=generator, device=x.device)
        return x

    # ------------------------------------------------------------------ likelihood (RL)

    def _rl_coefficients(self) -> StepCoefficients:
        if "rl" not in self._coefficients:
            self._coefficients["rl"] = step_coefficients(self.config, "ddim", eta=self.config.rl_eta)
        return self._coefficients["rl"]

    def _step_mean(self, x: torch.Tensor, out: torch.Tensor, coef: dict[str, torch.Tensor]) -> torch.Tensor:
        """μ_k of the affine update; coefficient tensors broadcast over x (B, ..., H, Da)."""
        clip = 1.0 if self.config.clip_sample else float("inf")
        x0 = (coef["r_xt"] * x + coef["r_out"] * out).clamp(-clip, clip)
        return coef["c_x0"] * x0 + coef["c_out"] * out + coef["c_xt"] * x

    def sample_with_trace(
        self, obs_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """obs_norm (B, To, Do) -> chunk_norm (B, H, Da), {"chain": (B, K + 1, H, Da)} (noise first), log π (B,)."""
        coef = self._rl_coefficients()
        cond = self.obs_encoder(obs_norm)
        batch = obs_norm.shape[0]
        shape = (batch, self.config.horizon, self.action_dim)
        x = torch.randn(shape, generator=generator, device=obs_norm.device)
        chain, log_prob = [x], torch.zeros(batch, device=x.device)
        executed = self.config.act_steps
        for k, t in enumerate(coef.timesteps):
            out = self.network(x, cond, torch.full((batch,), t, device=x.device))
            step = {name: getattr(coef, name)[k] for name in ("r_xt", "r_out", "c_x0", "c_out", "c_xt")}
            std = max(coef.sigma[k], self.config.rl_min_std)
            z = torch.randn(shape, generator=generator, device=x.device)  # = (x_{k+1} − μ_k) / σ_k
            x = self._step_mean(x, out, step) + std * z
            log_prob += (-0.5 * z[:, :executed].square() - math.log(std) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(-1)
            chain.append(x)
        return x, {"chain": torch.stack(chain, dim=1)}, log_prob

    def log_prob(self, obs_norm: torch.Tensor, trace: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ over denoising steps of log N(x_{k+1}; μ_k, σ_k²), first act_steps actions -> (B,)."""
        coef = self._rl_coefficients()
        chain = trace["chain"]
        batch, steps = chain.shape[0], len(coef.timesteps)
        x = chain[:, :-1].reshape(batch * steps, *chain.shape[2:])
        cond = self.obs_encoder(obs_norm).repeat_interleave(steps, dim=0)
        t = torch.tensor(coef.timesteps, device=chain.device).repeat(batch)
        out = self.network(x, cond, t).view(batch, steps, *chain.shape[2:])
        per_step = lambda name: torch.tensor(getattr(coef, name), dtype=chain.dtype, device=chain.device).view(1, steps, 1, 1)  # noqa: E731
        mean = self._step_mean(chain[:, :-1], out, {name: per_step(name) for name in ("r_xt", "r_out", "c_x0", "c_out", "c_xt")})
        std = per_step("sigma").clamp(min=self.config.rl_min_std)
        executed = self.config.act_steps
        z = (chain[:, 1:, :executed] - mean[:, :, :executed]) / std
        log_density = -0.5 * z.square() - torch.log(std) - 0.5 * math.log(2 * math.pi)
        return log_density.flatten(1).sum(-1)

    def sample_chunk_norm_numpy(
        self, twin: NumpyTwin, obs: np.ndarray, deterministic: bool, generator: torch.Generator | None
    ) -> np.ndarray:
        """The same sampler as above in one compiled call on the NumPy twin, for small CPU batches.

        The noise is drawn from the generator in the torch loop's order (initial chunk, then one draw
        per step with sigma > 0), so both paths return the same chunk for the same seed.
        """
        batch = obs.shape[0]
        if not deterministic and self.config.scheduler not in PRECOMPUTED_SCHEDULERS:
            with torch.inference_mode():
                obs_norm = self.normalize_obs(obs)
                return self.sample_chunk_norm_with_scheduler(obs_norm, deterministic, generator).numpy().reshape(batch, -1)
        coef = self.coefficients(deterministic)
        shape = (batch, self.config.horizon, self.action_dim)
        x = torch.randn(shape, generator=generator).numpy().reshape(batch, -1)
        noise = None
        if any(coef.sigma):
            noise = np.zeros((len(coef.timesteps), *x.shape), np.float32)
            for k in np.flatnonzero(coef.sigma):
                noise[k] = torch.randn(shape, generator=generator).numpy().reshape(batch, -1)
        clip = 1.0 if self.config.clip_sample else math.inf
        return twin.sample(obs, x, coef.timesteps, coef.table, noise, clip)

    def sample_chunk_norm_with_scheduler(
        self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The textbook loop that calls a diffusers scheduler's `step()` every denoising step.

        This is how Diffusion Policy and LeRobot sample (scheduler built once, `set_timesteps` per
        chunk); it is the path for schedulers without precomputed constants, and the reference the
        fast samplers are tested and timed against.
        """
        name = "ddim" if deterministic else self.config.scheduler
        if name not in self._schedulers:
            self._schedulers[name] = make_scheduler(self.config, name)
        scheduler = self._schedulers[name]
        scheduler.set_timesteps(self.config.num_inference_steps)  # also resets multistep solvers' history
        step_kwargs = {"eta": 0.0 if deterministic else self.config.ddim_eta} if name == "ddim" else {}
        cond = self.obs_encoder(obs_norm)
        batch = obs_norm.shape[0]
        x = torch.randn((batch, self.config.horizon, self.action_dim), generator=generator, device=obs_norm.device)
        for t in scheduler.timesteps:
            out = self.network(x, cond, t.expand(batch).to(x.device))
            x = scheduler.step(out, t, x, generator=generator, **step_kwargs).prev_sample
        return x
