"""Soft actor-critic (Haarnoja et al. 2018, with automatic temperature) on chunk decisions.

One `step()` takes `env_steps_per_step` environment steps in each of `num_envs` environments (uniform
random actions for the first `learning_starts` environment steps), stores the transitions in the
memory-mapped replay buffer (`robotune/training/replay.py`), then makes `updates_per_step` updates:

    y      = r + d (1 − term) [min_e Q̄_e(s', a') − α log π(a'|s') − Σ penalty(s', a')],   a' ~ π(·|s')
    L_Q    = ½ Σ_e E[(Q_e(s, a) − y)²]
    L_π    = E[α log π(ã|s) − min_e Q_e(s, ã)] + Σ actor_term,                            ã ~ π(·|s) (reparameterised)
    L_α    = −E[log α (log π(ã|s) + H_target)],   H_target = −dim(a)
    Q̄     ← (1 − τ) Q̄ + τ Q

d is γ^k for a k-step chunk. The critic is the configured `critic=` plugin (an ensemble evaluated as
one batched network; SAC's twin critics are `critic.num_members=2`), and regularizers from
`regularizer=[...]` add their actor and target terms and train their own models each update.
The actor is any policy with `rsample(obs_norm, generator) -> (chunk_norm, log_prob)`: the Gaussian
with `policy.tanh_squash=true policy.state_dependent_std=true`.

Speed: fused Adam, a foreach Polyak update, critic gradients switched off for the actor's backward
pass, and metrics kept as tensors so nothing synchronises until the loop logs them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robotune.core.algorithm import Algorithm, AlgorithmConfig, TrainingContext
from robotune.core.registry import register
from robotune.core.regularizer import ActionCorrectedPolicy
from robotune.rollout.chunk_rollout import ChunkRollout
from robotune.training.optimizers import make_adam
from robotune.training.replay import ReplayBuffer


@dataclass
class SACConfig(AlgorithmConfig):
    steps: int = 100_000  # loop steps: each is env_steps_per_step environment steps per env, then updates
    batch_size: int = 256
    num_envs: int = 1
    vector: str = "sync"  # "sync" or "async"
    env_steps_per_step: int = 1  # a multiple of policy.act_steps, so chunks are not cut between steps
    updates_per_step: int = 1
    buffer_size: int = 1_000_000
    learning_starts: int = 100  # environment steps of uniform random actions before the first update
    lr: float = 3e-4  # actor
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    autotune_alpha: bool = True
    target_entropy: float | None = None  # None: −(executed action dimensions)
    # Run the networks' forward and backward passes in bfloat16 (parameters, optimiser states and
    # losses stay float32). On CPUs with AVX512-BF16 this makes the matrix products cheaper; see
    # benchmarks/rl_engines.py for the measured effect on speed and return.
    bf16_autocast: bool = False


@register("algorithm", "sac")
class SAC(Algorithm):
    config_class = SACConfig
    config: SACConfig

    def __init__(self, config: SACConfig, context: TrainingContext) -> None:
        super().__init__(config, context)
        self.check_policy()
        policy = self.policy
        pc = policy.config
        self.obs_flat_dim = pc.obs_horizon * policy.obs_dim
        self.action_size = self.actor_action_size()
        self.critic = context.build_critic(self.obs_flat_dim, self.action_size)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.regularizers = context.build_regularizers(self.obs_flat_dim, self.action_size)
        self.actor_optimizer = make_adam([p for p in policy.parameters() if p.requires_grad], config.lr)  # frozen bases stay out
        self.critic_optimizer = make_adam(list(self.critic.parameters()), config.critic_lr)
        self.log_alpha = torch.tensor(np.log(config.init_alpha), dtype=torch.float32, device=context.device, requires_grad=True)
        self.alpha_optimizer = make_adam([self.log_alpha], config.alpha_lr)
        self.target_entropy = config.target_entropy if config.target_entropy is not None else -float(self.action_size)
        self.buffer = ReplayBuffer(context.work_dir / "replay", config.buffer_size, self.obs_flat_dim, self.action_size)
        self.sample_generator = torch.Generator().manual_seed(context.seed)  # replay indices, on the CPU
        self.envs = context.make_envs(config.num_envs, config.vector)
        self.rollout = ChunkRollout(self.envs, pc.obs_horizon, pc.act_steps, config.gamma, seed=context.seed)
        self.target_pairs = (list(self.target_critic.parameters()), list(self.critic.parameters()))

    # ------------------------------------------------------------------ the actor's action space
    # SAC acts on the chunk's executed actions, normalised; DSRL (dsrl.py) overrides these four
    # methods to act in a frozen generative policy's initial-noise space instead.

    def check_policy(self) -> None:
        if not hasattr(self.policy, "rsample"):
            raise TypeError(
                f"algo=sac needs a policy with rsample(obs_norm, generator) -> (chunk_norm, log_prob); "
                f"policy '{self.policy.config.name}' has none (use policy=gaussian policy.tanh_squash=true policy.state_dependent_std=true)"
            )

    def actor_action_size(self) -> int:
        """Size of the actor's (and the critic's) action: the executed actions, flattened."""
        return self.policy.config.act_steps * self.policy.action_dim

    def actor_action(self, obs_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs_norm (B, To, Do) -> a reparameterised action (B, action_size) in the critic's units, log π (B,)."""
        chunk, log_prob = self.policy.rsample(obs_norm, self.context.generator)
        return chunk[:, : self.policy.config.act_steps].flatten(1), log_prob

    def to_environment(self, obs_norm: torch.Tensor, action: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor]:
        """An actor action (B, action_size), or None for uniform random exploration -> raw executed
        actions (B, act_steps, Da) for the environments, and what the replay buffer stores (raw, flat)."""
        k, da = self.policy.config.act_steps, self.policy.action_dim
        if action is None:
            action = torch.rand((len(obs_norm), k * da), generator=self.context.generator, device=self.context.device) * 2 - 1
        raw = self.policy.action_normalizer.unnormalize(action.view(-1, k, da).clamp(-1.0, 1.0))
        return raw.cpu().numpy(), raw.flatten(1)

    def critic_action(self, stored: torch.Tensor) -> torch.Tensor:
        """A replay buffer's action (B, action_size) -> the critic's units (normalised)."""
        k, da = self.policy.config.act_steps, self.policy.action_dim
        return self.policy.action_normalizer.normalize(stored.view(-1, k, da)).flatten(1)

    # ------------------------------------------------------------------ acting

    def _obs_norm(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw windows (B, To, Do), or flat (B, To * Do) -> normalised windows (B, To, Do) on the device."""
        obs = torch.as_tensor(obs, device=self.context.device)
        return self.policy.obs_normalizer.normalize(obs.view(obs.shape[0], self.policy.config.obs_horizon, -1))

    @torch.no_grad()
    def _decide(self, obs: np.ndarray) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        obs_norm = self._obs_norm(obs)
        action = self.actor_action(obs_norm)[0] if self.env_steps >= self.config.learning_starts else None
        actions, stored = self.to_environment(obs_norm, action)
        return actions, {"action": stored}

    # ------------------------------------------------------------------ learning

    def step(self) -> dict[str, Any]:
        cfg = self.config
        batch, episodes = self.rollout.collect(cfg.env_steps_per_step, self._decide)
        self.env_steps += cfg.env_steps_per_step * cfg.num_envs
        self.buffer.add_decisions(batch)
        metrics: dict[str, Any] = episodes.summary()
        if self.env_steps >= cfg.learning_starts:
            for _ in range(cfg.updates_per_step):
                metrics.update(self.update(self.buffer.sample(cfg.batch_size, self.sample_generator, self.context.device)))
        return metrics

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step of critic, actor and temperature on a raw replay batch (see the module docstring)."""
        obs_norm, next_obs_norm = self._obs_norm(batch["obs"]), self._obs_norm(batch["next_obs"])
        obs_flat, next_obs_flat = obs_norm.flatten(1), next_obs_norm.flatten(1)
        action = self.critic_action(batch["action"])
        norm_batch = {**batch, "obs": obs_flat, "next_obs": next_obs_flat, "action": action}
        alpha = self.log_alpha.exp().detach()
        metrics: dict[str, torch.Tensor] = {}
        autocast = torch.autocast(self.context.device.type, dtype=torch.bfloat16, enabled=self.config.bf16_autocast)

        with torch.no_grad(), autocast:
            next_action, next_log_prob = self.actor_action(next_obs_norm)
            next_value = self.target_critic.q_value(next_obs_flat, next_action).min(0).values - alpha * next_log_prob
            for regularizer in self.regularizers:
                penalty, reg_metrics = regularizer.critic_term(norm_batch, next_action)
                next_value = next_value - penalty
                metrics.update(reg_metrics)
            target = batch["reward"] + batch["discount"] * (1 - batch["terminated"]) * next_value.float()
        with autocast:
            q = self.critic.q_value(obs_flat, action).float()
        critic_loss = 0.5 * (q - target).square().mean(1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        self.critic.requires_grad_(False)  # the actor's loss needs dQ/da, not dQ/dθ_Q
        with autocast:
            new_action, log_prob = self.actor_action(obs_norm)
            q_new = self.critic.q_value(obs_flat, new_action).min(0).values.float()
        log_prob = log_prob.float()
        actor_loss = (alpha * log_prob - q_new).mean()
        for regularizer in self.regularizers:
            term, reg_metrics = regularizer.actor_term(norm_batch, new_action, q_new)
            actor_loss = actor_loss + term
            metrics.update(reg_metrics)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        self.critic.requires_grad_(True)

        if self.config.autotune_alpha:
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.target_pairs[0], self.target_pairs[1], self.config.tau)
        for regularizer in self.regularizers:
            metrics.update(regularizer.update(norm_batch))
        self.grad_steps += 1
        metrics.update(
            critic_loss=critic_loss.detach(), actor_loss=actor_loss.detach(), alpha=alpha, q_mean=q.detach().mean(),
            entropy=-log_prob.detach().mean(),
        )
        return metrics

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "log_alpha": self.log_alpha.detach(),
            "optimizers": [o.state_dict() for o in (self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer)],
            "regularizers": [{"weights": r.state_dict(), "extra": r.extra_state()} for r in self.regularizers],
            "buffer": self.buffer.state_dict(),
            "sample_generator": self.sample_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for optimizer, optimizer_state in zip((self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer), state["optimizers"]):
            optimizer.load_state_dict(optimizer_state)
        for regularizer, saved in zip(self.regularizers, state["regularizers"]):
            regularizer.load_state_dict(saved["weights"])
            regularizer.load_extra_state(saved["extra"])
        self.buffer.load_state_dict(state["buffer"])
        self.sample_generator.set_state(state["sample_generator"])
        self.rollout.restart(seed=self.context.seed + self.env_steps)  # new episodes: env state is not checkpointed

    def inference_policy(self):
        correctors = self.action_correctors()
        return ActionCorrectedPolicy(self.policy.eval(), correctors) if correctors else self.policy.eval()

    def action_correctors(self) -> list:
        return [r for r in self.regularizers if r.corrects_actions]

    def close(self) -> None:
        self.envs.close()
