"""DSRL (Wagenmaker et al. 2025, "Steering Your Diffusion Policy with Latent Space RL"), the SAC variant:
soft actor-critic whose action is the initial noise of a frozen generative policy.

A diffusion policy sampled with DDIM at η = 0, or a flow policy integrated with Euler steps, is a
deterministic map from (observation, initial noise w) to a chunk: `chunk_from_noise(o, w)`. DSRL
leaves that map untouched and learns where to start it:

    w = m tanh(u),   u ~ N(μ_φ(o), σ_φ(o)²)            m = `noise_magnitude` (DSRL: 1.5)
    chunk = base.chunk_from_noise(o, w)                 the environment runs its first act_steps actions
    Q_ψ(o, w)                                           the critic scores the noise, not the actions

and trains (φ, ψ) with SAC (`algo=sac`, actor_critic.py), the noise taking the place of the
action: the same critic, target, temperature and replay updates. The first `learning_starts`
environment steps draw w ~ N(0, I) clipped to ±m, so the replay starts with the base policy's own
behaviour. DSRL's target entropy is 0 (`target_entropy`), not −dim(w): w has H·Da dimensions and
the base already explores through it.

The deployed policy is the noise actor and the base together, one `noise_steered` policy in one
checkpoint (`wrapped_policy.py`); its deterministic mode takes w = m tanh(μ_φ(o)). The critic
stays in the training state. MIP has no noise input (its first step is π(o, 0, 0)), so it cannot be
steered this way: select residual PPO for it.

    robotune train algo=dsrl policy=diffusion init_from=<diffusion or flow BC checkpoint>
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from robotune.core.algorithm import TrainingContext
from robotune.core.normalization import Normalizer
from robotune.core.registry import register
from robotune.core.spec import TaskSpec
from robotune.plugins.gaussian import GaussianConfig, GaussianPolicy
from robotune.plugins.actor_critic import SAC, SACConfig
from robotune.plugins.wrapped_policy import WrappedPolicy, WrappedPolicyConfig


@dataclass
class NoiseSteeredConfig(WrappedPolicyConfig):
    noise_magnitude: float = 1.5  # m: the noise actor's output lies in [-m, m] per entry (DSRL's action_magnitude)
    hidden_dim: int = 256  # noise actor MLP width (DSRL uses 3 x 2048 on a GPU)
    num_layers: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.noise_magnitude <= 0:
            raise ValueError(f"policy.noise_magnitude must be > 0, got {self.noise_magnitude}")


@register("policy", "noise_steered")
class NoiseSteeredPolicy(WrappedPolicy):
    """A frozen diffusion or flow policy whose initial noise comes from a learned actor."""

    config: NoiseSteeredConfig

    def __init__(self, config: NoiseSteeredConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        if not hasattr(self.base, "chunk_from_noise"):
            raise TypeError(
                f"DSRL steers a policy through its initial noise, and policy '{config.base['name']}' has no noise input "
                f"(MIP starts from zeros); fine-tune it with algo=residual_ppo instead"
            )
        # The noise actor is SAC's tanh-squashed Gaussian actor over a chunk-shaped output: obs -> u (B, H, Da).
        actor_config = GaussianConfig(
            name="gaussian", obs_horizon=config.obs_horizon, horizon=config.horizon, act_steps=config.horizon,
            backbone="plain_mlp", hidden_dim=config.hidden_dim, num_blocks=config.num_layers, activation="relu",
            state_dependent_std=True, tanh_squash=True, init_std=1.0, min_std=2e-9, max_std=7.389, fast_inference=False,
        )
        identity = TaskSpec(f"{spec.name}-noise", spec.obs_names, (-1.0,) * spec.action_dim, (1.0,) * spec.action_dim,
                            spec.control_rate_hz, spec.max_episode_steps)
        self.noise_actor = GaussianPolicy(actor_config, identity, Normalizer.identity(spec.obs_dim), Normalizer.identity(spec.action_dim))

    def noise(self, obs_norm: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """obs_norm (B, To, Do) -> a reparameterised noise w (B, H, Da) in [-m, m] and log π(u | o) (B,)."""
        squashed, log_prob = self.noise_actor.rsample(obs_norm, generator)
        return self.config.noise_magnitude * squashed, log_prob

    def chunk(self, obs_norm: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The base's deterministic chunk (B, H, Da) from noise (B, H, Da)."""
        with torch.no_grad():
            return self.base.chunk_from_noise(obs_norm, noise)

    def sample_chunk_norm(self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """obs_norm (B, To, Do) -> chunk (B, H, Da); deterministic takes w = m tanh(μ_φ(o))."""
        if deterministic:
            mean, _ = self.noise_actor.distribution(obs_norm)
            noise = self.config.noise_magnitude * torch.tanh(mean)
        else:
            noise, _ = self.noise(obs_norm, generator)
        return self.chunk(obs_norm, noise)


@dataclass
class DSRLConfig(SACConfig):
    """SAC in noise space with DSRL's settings (target entropy 0, a noise box of 1.5), sized for a CPU."""

    steps: int = 2000  # loop steps of env_steps_per_step environment steps in each environment
    num_envs: int = 4
    env_steps_per_step: int = 8  # one chunk of the default act_steps per environment per loop step
    updates_per_step: int = 4
    batch_size: int = 256
    learning_starts: int = 1600  # environment steps with w ~ N(0, I): the base's own behaviour
    buffer_size: int = 200_000
    gamma: float = 0.99
    target_entropy: float | None = 0.0  # DSRL's value
    # the noise-steered policy (copied into policy.* of the saved checkpoint)
    noise_magnitude: float = 1.5
    actor_hidden_dim: int = 256
    actor_num_layers: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.actor != "sac":
            raise ValueError(f"algo=dsrl trains its noise actor with SAC: algo.actor must be 'sac', got '{self.actor}'")


@register("algorithm", "dsrl")
class DSRL(SAC):
    """SAC (actor_critic.py) with the noise of a `noise_steered` policy as its action."""

    config: DSRLConfig
    policy: NoiseSteeredPolicy

    def __init__(self, config: DSRLConfig, context: TrainingContext) -> None:
        policy = NoiseSteeredPolicy.wrap(
            context.policy, noise_magnitude=config.noise_magnitude,
            hidden_dim=config.actor_hidden_dim, num_layers=config.actor_num_layers,
        )
        super().__init__(config, dataclasses.replace(context, policy=policy))

    def check_policy(self) -> None:
        """Checked when the noise-steered policy is built."""

    def actor_action_size(self) -> int:
        return self.policy.config.horizon * self.policy.action_dim

    def stochastic_action(self, obs_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise, log_prob = self.policy.noise(obs_norm, self.context.generator)
        return noise.flatten(1), log_prob

    def to_environment(self, obs_norm: torch.Tensor, action: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor]:
        """The noise (B, H·Da) (None: w ~ N(0, I) clipped to ±m) -> the base's executed actions, raw; the replay stores w."""
        policy, m = self.policy, self.config.noise_magnitude
        if action is None:
            shape = (len(obs_norm), self.action_size)
            action = torch.randn(shape, generator=self.context.generator, device=self.context.device).clamp(-m, m)
        chunk = policy.chunk(obs_norm, action.view(len(obs_norm), policy.config.horizon, policy.action_dim))
        executed = chunk[:, : policy.config.act_steps].clamp(-1.0, 1.0)
        return policy.action_normalizer.unnormalize(executed).cpu().numpy(), action

    def critic_action(self, stored: torch.Tensor) -> torch.Tensor:
        return stored
