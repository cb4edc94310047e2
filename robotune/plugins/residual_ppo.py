"""Residual PPO (ResiP: Ankile et al. 2024, "From Imitation to Refinement"): PPO on a small Gaussian
correction added to a frozen chunk policy's actions.

The base (diffusion, flow, MIP: any chunk policy) proposes a chunk b = base(o) with its deterministic
sampler (DDIM η = 0 or Euler from fresh noise, as ResiP samples its base). For each executed action
j < act_steps, a residual MLP sees (o, b_j, j / act_steps) and proposes a correction:

    Δ_j ~ N(μ_φ(o, b_j, j), σ²),     a_j = b_j + s Δ_j          (normalised action units)

with s = `residual_scale` (ResiP: 0.1) and σ = exp(`residual_log_std`) fixed (ResiP: e^−1 ≈ 0.37,
so s σ ≈ 0.037). The MLP's last layer starts at zero, so before training the policy acts exactly
like its base. PPO then treats (o, b) as the state and Δ as the action:

    log π(Δ | o, b) = Σ_{j<act_steps} log N(Δ_j; μ_φ(o, b_j, j), σ²)

which needs no likelihood from the base at all: this is why residual RL works for MIP too.

One difference from ResiP: ResiP's residual runs every environment step on that step's observation;
here the residual is per action but conditioned on the observation the chunk was planned from, so
the combined policy is an ordinary chunk policy that the rollout, `robotune eval` and `robotune
deploy` run unchanged. Base and residual are one `residual` policy in one checkpoint
(`wrapped_policy.py`).

    robotune train algo=residual_ppo policy=diffusion init_from=<BC checkpoint or run dir>
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from robotune.core.algorithm import TrainingContext
from robotune.core.normalization import Normalizer
from robotune.core.registry import register
from robotune.core.spec import TaskSpec
from robotune.plugins.ppo import PPO, PPOConfig
from robotune.plugins.wrapped_policy import WrappedPolicy, WrappedPolicyConfig


@dataclass
class ResidualPolicyConfig(WrappedPolicyConfig):
    residual_scale: float = 0.1  # s in a = b + s Δ (ResiP's action_scale)
    residual_log_std: float = -1.0  # fixed log σ of Δ before scaling (ResiP: −1, learn_std false)
    hidden_dim: int = 256  # residual MLP width (ResiP: 2 x 256, ReLU)
    num_layers: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.residual_scale <= 0:
            raise ValueError(f"policy.residual_scale must be > 0, got {self.residual_scale}")


@register("policy", "residual")
class ResidualPolicy(WrappedPolicy):
    """A frozen chunk policy plus a per-action Gaussian residual on (observation, base action)."""

    config: ResidualPolicyConfig

    def __init__(self, config: ResidualPolicyConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        width_in = config.obs_horizon * spec.obs_dim + spec.action_dim + 1
        layers: list[nn.Module] = []
        for width in [config.hidden_dim] * config.num_layers:
            layers += [nn.Linear(width_in, width), nn.ReLU()]
            width_in = width
        last = nn.Linear(width_in, spec.action_dim)
        nn.init.zeros_(last.weight)  # Δ ≡ 0 at the start: the policy begins exactly as its base
        nn.init.zeros_(last.bias)
        self.residual = nn.Sequential(*layers, last)

    def base_chunk(self, obs_norm: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """obs_norm (B, To, Do) -> the base's deterministic-sampler chunk (B, H, Da), clamped to [-1, 1]."""
        with torch.no_grad():
            return self.base.sample_chunk_norm(obs_norm, True, generator).clamp(-1.0, 1.0)

    def residual_mean(self, obs_norm: torch.Tensor, base_chunk: torch.Tensor) -> torch.Tensor:
        """obs_norm (B, To, Do), base_chunk (B, H, Da) -> μ_φ (B, act_steps, Da)."""
        batch, k = obs_norm.shape[0], self.config.act_steps
        obs_flat = obs_norm.flatten(1)[:, None].expand(batch, k, -1)
        position = (torch.arange(k, device=obs_norm.device, dtype=obs_norm.dtype) / k).expand(batch, k)[..., None]
        return self.residual(torch.cat([obs_flat, base_chunk[:, :k], position], dim=-1))

    def compose(self, base_chunk: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """a_j = b_j + s Δ_j on the executed actions; the rest of the chunk is the base's."""
        k = self.config.act_steps
        return torch.cat([base_chunk[:, :k] + self.config.residual_scale * delta, base_chunk[:, k:]], dim=1)

    def sample_chunk_norm(self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """obs_norm (B, To, Do) -> chunk (B, H, Da); deterministic takes Δ = μ_φ."""
        return self._sample(obs_norm, deterministic, generator)[0]

    def _sample(
        self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """-> chunk (B, H, Da), trace {"base_chunk", "delta"}, μ_φ (B, act_steps, Da)."""
        base_chunk = self.base_chunk(obs_norm, generator)
        mean = self.residual_mean(obs_norm, base_chunk)
        delta = mean
        if not deterministic:
            delta = mean + math.exp(self.config.residual_log_std) * torch.randn(mean.shape, generator=generator, device=mean.device)
        return self.compose(base_chunk, delta), {"base_chunk": base_chunk, "delta": delta}, mean

    # ------------------------------------------------------------------ likelihood (RL)

    def sample_with_trace(self, obs_norm: torch.Tensor, generator: torch.Generator | None):
        """obs_norm (B, To, Do) -> chunk_norm (B, H, Da), {"base_chunk": (B, H, Da), "delta": (B, k, Da)}, log π (B,)."""
        chunk, trace, mean = self._sample(obs_norm, False, generator)
        return chunk, trace, self._log_density(trace["delta"], mean)

    def log_prob(self, obs_norm: torch.Tensor, trace: dict[str, torch.Tensor]) -> torch.Tensor:
        """log π(Δ | o, b) (B,) of a traced sample under the current residual."""
        return self._log_density(trace["delta"], self.residual_mean(obs_norm, trace["base_chunk"]))

    def _log_density(self, delta: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        log_std = self.config.residual_log_std
        z = (delta - mean) / math.exp(log_std)
        return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).flatten(1).sum(-1)


@dataclass
class ResidualPPOConfig(PPOConfig):
    """PPO settings after ResiP's (`base_residual_rl.yaml`), scaled to a few CPU environments."""

    num_envs: int = 8
    rollout_steps: int = 128
    batch_size: int = 256
    epochs: int = 10
    lr: float = 3e-4  # ResiP's actor learning rate: the residual starts at zero, so no BC to protect
    critic_lr: float = 5e-3  # ResiP's critic learning rate
    gamma: float = 0.999
    value_coef: float = 1.0
    max_grad_norm: float = 1.0
    target_kl: float = 0.1  # ResiP stops an iteration's epochs once the approximate KL exceeds 0.1
    critic_warmup_iterations: int = 2
    reward_scaling: bool = True  # ResiP normalises rewards by a running std, clipped at 5
    reward_clip: float = 5.0
    # the residual policy (copied into policy.* of the saved checkpoint)
    residual_scale: float = 0.1
    residual_log_std: float = -1.0
    residual_hidden_dim: int = 256
    residual_num_layers: int = 2


@register("algorithm", "residual_ppo")
class ResidualPPO(PPO):
    """PPO (ppo.py) on a `residual` policy built around the `init_from` policy."""

    config: ResidualPPOConfig

    def __init__(self, config: ResidualPPOConfig, context: TrainingContext) -> None:
        policy = ResidualPolicy.wrap(
            context.policy,
            residual_scale=config.residual_scale,
            residual_log_std=config.residual_log_std,
            hidden_dim=config.residual_hidden_dim,
            num_layers=config.residual_num_layers,
        )
        super().__init__(config, dataclasses.replace(context, policy=policy))
