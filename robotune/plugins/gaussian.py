"""Gaussian chunk policy: one diagonal Gaussian over the whole normalised chunk, trained by likelihood.

    a ~ N(μ(o), diag σ²),   loss = mean over chunk entries of  ½((a − μ)/σ)² + log σ + ½ log 2π

σ is either one learned value per chunk entry (`state_dependent_std=False`, as in PPO's default
actor) or a second network head. The distribution is unimodal by construction: given demos that
go around an obstacle on either side it averages the two, and that is the baseline's job here.
Deterministic sampling returns μ.

With `tanh_squash` (SAC's actor) the chunk is a = tanh(u), u ~ N(μ, σ²), and its log-density gains
the change of variables −Σ log(1 − tanh²(u)), computed as −Σ 2(log 2 − u − softplus(−2u)) for
stability (Haarnoja et al. 2018, appendix C).

For policy-gradient fine-tuning (`SupportsLikelihood`) the trace of a sample is its latent u, and
`log_prob` scores the chunk's first `act_steps` actions, the ones executed.
"""

from __future__ import annotations

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
from robotune.plugins.fast_inference import FastInference, NumpyTwin
from robotune.plugins.networks import BackbonePolicyConfig, make_chunk_network, make_obs_encoder


@dataclass
class GaussianConfig(BackbonePolicyConfig):
    state_dependent_std: bool = False  # False: σ is a learned parameter per chunk entry; True: a network head
    init_std: float = 0.5  # σ at initialisation, in normalised action units ([-1, 1] spans the action range)
    min_std: float = 0.01  # σ floor: near-deterministic demos would otherwise drive log σ and the loss to -inf
    max_std: float = 1.0  # σ ceiling: wider than the whole normalised range is never useful
    tanh_squash: bool = False  # a = tanh(u): bounded actions with an exact density (SAC's actor)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.min_std <= self.init_std <= self.max_std:
            raise ValueError(
                f"need 0 < policy.min_std <= policy.init_std <= policy.max_std, got "
                f"{self.min_std}, {self.init_std}, {self.max_std}"
            )


@register("policy", "gaussian")
class GaussianPolicy(FastInference, Policy):
    """Unimodal Gaussian over the chunk; the baseline that multimodal demos should defeat."""

    config_class: ClassVar[type[GaussianConfig]] = GaussianConfig
    config: GaussianConfig

    def __init__(self, config: GaussianConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        self.obs_encoder = make_obs_encoder(config, spec.obs_dim)
        heads = 2 if config.state_dependent_std else 1
        self.network = make_chunk_network(
            config, in_channels=0, out_channels=heads * spec.action_dim, cond_dim=self.obs_encoder.out_dim, uses_time=False
        )
        init_log_std = math.log(config.init_std)
        if config.state_dependent_std:
            self.log_std_offset = init_log_std  # the head's output starts near 0, so σ starts near init_std
        else:
            self.log_std = nn.Parameter(torch.full((config.horizon, spec.action_dim), init_log_std))

    def distribution(self, obs_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs_norm (B, To, Do) -> mean (B, H, Da) and log σ (B, H, Da) or (H, Da), normalised units."""
        return self.head(self.network(None, self.obs_encoder(obs_norm)))

    def head(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's output (B, H, Da or 2 Da) -> mean and clamped log σ."""
        if self.config.state_dependent_std:
            mean, log_std = out.chunk(2, dim=-1)
            log_std = log_std + self.log_std_offset
        else:
            mean, log_std = out, self.log_std
        return mean, log_std.clamp(math.log(self.config.min_std), math.log(self.config.max_std))

    def compute_loss(
        self, obs_norm: torch.Tensor, action_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative log-likelihood per chunk entry of action_norm (B, H, Da)."""
        mean, log_std = self.distribution(obs_norm)
        z = (action_norm - mean) * torch.exp(-log_std)
        nll = (0.5 * z.square() + log_std + 0.5 * math.log(2 * math.pi)).mean()
        mse = (action_norm - mean).square().mean()
        return nll, {"loss": nll.item(), "mse": mse.item(), "std": log_std.exp().mean().item()}

    def sample_chunk_norm(self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        return self.sample(*self.distribution(obs_norm), deterministic, generator, self.config.tanh_squash)

    # ------------------------------------------------------------------ likelihood (RL)

    def sample_with_trace(
        self, obs_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """obs_norm (B, To, Do) -> chunk_norm (B, H, Da), {"latent": u (B, H, Da)}, log π (B,)."""
        chunk, log_prob, latent = self._sample(obs_norm, generator)
        return chunk, {"latent": latent}, log_prob

    def log_prob(self, obs_norm: torch.Tensor, trace: dict[str, torch.Tensor]) -> torch.Tensor:
        """log π(a | o) (B,) of a traced sample, over its first act_steps actions."""
        mean, log_std = self.distribution(obs_norm)
        return self._log_density(trace["latent"], mean, log_std)

    def rsample(self, obs_norm: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample (gradients flow to μ and σ) and its log-density: (B, H, Da), (B,)."""
        chunk, log_prob, _ = self._sample(obs_norm, generator)
        return chunk, log_prob

    def _sample(self, obs_norm: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, ...]:
        mean, log_std = self.distribution(obs_norm)
        latent = mean + log_std.exp() * torch.randn(mean.shape, generator=generator, device=mean.device)
        return self._squash(latent), self._log_density(latent, mean, log_std), latent

    def _squash(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.tanh(latent) if self.config.tanh_squash else latent

    def _log_density(self, latent: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        executed = self.config.act_steps
        if executed < self.config.horizon:  # a full slice would still cost a slice and its backward per tensor
            latent, mean = latent[:, :executed], mean[:, :executed]
            log_std = log_std[..., :executed, :]
        z = (latent - mean) * torch.exp(-log_std)
        log_density = -0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)
        if self.config.tanh_squash:
            log_density = log_density - 2 * (math.log(2) - latent - nn.functional.softplus(-2 * latent))
        return log_density.flatten(1).sum(-1)

    def sample_chunk_norm_numpy(
        self, twin: NumpyTwin, obs: np.ndarray, deterministic: bool, generator: torch.Generator | None
    ) -> np.ndarray:
        """The network on the NumPy twin; the head and the draw stay in torch (a handful of ops)."""
        batch = obs.shape[0]
        with torch.inference_mode():
            out = torch.from_numpy(twin(None, obs)).view(batch, self.config.horizon, -1)
            mean, log_std = self.head(out)
            return self.sample(mean, log_std, deterministic, generator, self.config.tanh_squash).numpy().reshape(batch, -1)

    @staticmethod
    def sample(
        mean: torch.Tensor, log_std: torch.Tensor, deterministic: bool, generator: torch.Generator | None, squash: bool
    ) -> torch.Tensor:
        latent = mean if deterministic else mean + log_std.exp() * torch.randn(mean.shape, generator=generator, device=mean.device)
        return torch.tanh(latent) if squash else latent
