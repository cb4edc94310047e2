"""Flow matching on the straight (rectified) path from noise to the chunk (Lipman et al. 2023; Liu et al. 2023).

With t ∈ [0, 1], ε ~ N(0, I) and a demonstrated chunk a (normalised):
    x_t = (1 − t) ε + t a,        target velocity  v = a − ε,        loss = ‖v_θ(x_t, o, t) − v‖²
Sampling integrates dx/dt = v_θ(x, o, t) from x_0 = ε with `num_steps` Euler steps of size 1/N.
The straight path makes one or two steps usable (the MIP paper runs flow policies at 2 steps).

Euler integration of this ODE is deterministic given its starting noise, so `deterministic` does
not change the sampler: both modes draw ε from the generator, and a seeded generator repeats.

Likelihood surrogate for policy-gradient fine-tuning (FPO, McAllister et al. 2025): a flow has no
tractable density, but its conditional flow-matching loss bounds one. A sample's trace holds the
chunk a and `rl_mc_samples` (ε_j, t_j) pairs drawn once with it; `log_prob` returns
    −(1/N) Σ_j ‖v_θ(x_{t_j}, o, t_j) − (a − ε_j)‖²     over the chunk's first act_steps actions,
so PPO's ratio exp(log_prob_θ − log_prob_old) is FPO's exp(ℓ_old − ℓ_θ), evaluated on the same pairs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy
from robotune.core.registry import register
from robotune.core.spec import TaskSpec
from robotune.plugins.fast_inference import FastInference, NumpyTwin
from robotune.plugins.networks import UNIT_TIME_SCALE, BackbonePolicyConfig, make_chunk_network, make_obs_encoder


@functools.cache
def euler_schedule(num_steps: int) -> tuple[tuple[float, ...], np.ndarray]:
    """The network's time input at each of N Euler steps (k / N, scaled), and the steps as the twin's table.

    An Euler step x <- x + dt v is the twin's affine sampler step with r_xt = 1, r_out = dt, c_x0 = 1
    (columns: fast_inference.AFFINE_STEP_COLUMNS). Cached: every chunk uses the same ones.
    """
    times = tuple(k / num_steps * UNIT_TIME_SCALE for k in range(num_steps))
    table = np.array([[1.0, 1.0 / num_steps, 1.0, 0.0, 0.0, 0.0]] * num_steps)
    table.flags.writeable = False
    return times, table


@dataclass
class FlowConfig(BackbonePolicyConfig):
    num_steps: int = 10  # Euler steps (network calls) per chunk; 1 or 2 already work on the straight path
    rl_mc_samples: int = 8  # (noise, time) pairs stored with each RL sample for FPO's likelihood surrogate
    # std of Gaussian noise added to each chunk sampled for RL (normalised units; FPO's perturb_action_std): the
    # perturbed chunk is both the action taken and the flow-matching target, so a near-deterministic flow still explores
    rl_action_noise: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_steps", "rl_mc_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"policy.{name} must be >= 1, got {getattr(self, name)}")
        if self.rl_action_noise < 0:
            raise ValueError(f"policy.rl_action_noise must be >= 0, got {self.rl_action_noise}")


@register("policy", "flow")
class FlowMatchingPolicy(FastInference, Policy):
    """A velocity field over normalised chunks, conditioned on the encoded observation history."""

    config_class: ClassVar[type[FlowConfig]] = FlowConfig
    config: FlowConfig

    def __init__(self, config: FlowConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        self.obs_encoder = make_obs_encoder(config, spec.obs_dim)
        self.network = make_chunk_network(
            config, in_channels=spec.action_dim, out_channels=spec.action_dim, cond_dim=self.obs_encoder.out_dim, uses_time=True
        )

    def compute_loss(
        self, obs_norm: torch.Tensor, action_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """obs_norm (B, To, Do), action_norm (B, H, Da) -> MSE between predicted and straight-path velocity."""
        noise = torch.randn(action_norm.shape, generator=generator, device=action_norm.device)
        t = torch.rand(action_norm.shape[0], generator=generator, device=action_norm.device)
        x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * action_norm
        velocity = self.network(x_t, self.obs_encoder(obs_norm), t * UNIT_TIME_SCALE)
        loss = nn.functional.mse_loss(velocity, action_norm - noise)
        return loss, {"loss": loss.item()}

    def sample_chunk_norm(self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """obs_norm (B, To, Do) -> chunk (B, H, Da); predict_chunk clamps it to [-1, 1]."""
        noise = torch.randn((obs_norm.shape[0], self.config.horizon, self.action_dim), generator=generator, device=obs_norm.device)
        return self.chunk_from_noise(obs_norm, noise)

    def chunk_from_noise(self, obs_norm: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Euler integration from a given initial noise (B, H, Da) -> chunk (B, H, Da): the deterministic
        map (observation, noise) -> chunk that DSRL steers (dsrl.py)."""
        batch = obs_norm.shape[0]
        cond = self.obs_encoder(obs_norm)
        x = noise
        dt = 1.0 / self.config.num_steps
        for t in euler_schedule(self.config.num_steps)[0]:
            x = x + dt * self.network(x, cond, torch.full((batch,), t, device=x.device))
        return x

    def sample_with_trace(
        self, obs_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """obs_norm (B, To, Do) -> chunk_norm (B, H, Da), {"action", "noise": (B, N, H, Da), "time": (B, N)}, surrogate (B,)."""
        chunk = self.sample_chunk_norm(obs_norm, False, generator)
        if self.config.rl_action_noise:
            chunk = chunk + self.config.rl_action_noise * torch.randn(chunk.shape, generator=generator, device=chunk.device)
        pairs = (chunk.shape[0], self.config.rl_mc_samples)
        noise = torch.randn((*pairs, *chunk.shape[1:]), generator=generator, device=chunk.device)
        time = torch.rand(pairs, generator=generator, device=chunk.device)
        trace = {"action": chunk, "noise": noise, "time": time}
        return chunk, trace, self.log_prob(obs_norm, trace)

    def log_prob(self, obs_norm: torch.Tensor, trace: dict[str, torch.Tensor]) -> torch.Tensor:
        """FPO's surrogate (see the module docstring) -> (B,)."""
        action, noise, time = trace["action"][:, None], trace["noise"], trace["time"]
        batch, pairs = time.shape
        t = time[..., None, None]
        x_t = (1 - t) * noise + t * action
        cond = self.obs_encoder(obs_norm).repeat_interleave(pairs, dim=0)
        velocity = self.network(x_t.flatten(0, 1), cond, time.flatten() * UNIT_TIME_SCALE).view_as(noise)
        executed = self.config.act_steps
        error = (velocity - (action - noise))[:, :, :executed].square()
        return -error.flatten(2).sum(-1).mean(1)

    def sample_chunk_norm_numpy(
        self, twin: NumpyTwin, obs: np.ndarray, deterministic: bool, generator: torch.Generator | None
    ) -> np.ndarray:
        """The same Euler integration in one compiled call on the NumPy twin, for small CPU batches."""
        batch = obs.shape[0]
        x = torch.randn((batch, self.config.horizon, self.action_dim), generator=generator).numpy().reshape(batch, -1)
        return twin.sample(obs, x, *euler_schedule(self.config.num_steps))
