"""Implicit Q-learning (Kostrikov et al. 2022), as CORL's iql.py: no action outside the dataset is ever queried.

One `step()` is one gradient update on a batch of dataset transitions (s, a, r, s'):

    u    = min_e Q̄_e(s, a) − V(s)
    L_V  = E[|τ − 1(u < 0)| u²]                              expectile τ of Q̄ over the data's actions
    y    = r + γ (1 − d) V(s')                               V(s') taken before this step's V update
    L_Q  = mean_e E[(Q_e(s, a) − y)²]
    w    = min(exp(β (min_e Q̄_e(s, a) − V(s))), 100)        advantage weight, detached
    L_π  = E[w ‖π(s) − a‖²]                                  advantage-weighted regression, deterministic actor
    Q̄   ← (1 − τ_polyak) Q̄ + τ_polyak Q

The actor's learning rate follows a cosine decay over `steps`. Q and V are the `critic=` plugin (V
with action_dim 0; with `critic.num_members` > 1 every V member learns the same expectile and V is
their mean). Observations are z-scored and rewards scaled by 1000 / (max − min episode return), as
CORL does for locomotion (`robotune/plugins/offline_data.py`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from robotune.core.algorithm import Algorithm, AlgorithmConfig, TrainingContext
from robotune.core.registry import register
from robotune.plugins.offline_data import offline_transitions, require_single_step
from robotune.training.optimizers import make_adam

MAX_ADVANTAGE_WEIGHT = 100.0  # CORL's EXP_ADV_MAX


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """E[|τ − 1(u < 0)| u²] for u = diff (any shape): an asymmetric square that V minimises at Q's τ-expectile."""
    return ((expectile - (diff < 0).float()).abs() * diff.square()).mean()


def advantage_weight(advantage: torch.Tensor, beta: float) -> torch.Tensor:
    """min(exp(β A), 100): the advantage-weighted regression weight, clipped against overflow."""
    return torch.exp(beta * advantage).clamp(max=MAX_ADVANTAGE_WEIGHT)


@dataclass
class IQLConfig(AlgorithmConfig):
    steps: int = 1_000_000
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005  # Polyak rate of the target Q
    expectile: float = 0.7  # τ of L_V
    beta: float = 3.0  # inverse temperature of the advantage weight
    normalize_reward: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"algo.expectile must be in (0, 1), got {self.expectile}")


@register("algorithm", "iql")
class IQL(Algorithm):
    config: IQLConfig

    @classmethod
    def needs_dataset(cls, config: IQLConfig) -> bool:
        return True

    def __init__(self, config: IQLConfig, context: TrainingContext) -> None:
        super().__init__(config, context)
        policy = self.policy
        require_single_step(policy, config.name)
        self.data, _ = offline_transitions(policy, context.dataset, config.gamma, context.device, standardize_obs=True, normalize_reward=config.normalize_reward)
        self.critic = context.build_critic(policy.obs_dim, policy.action_dim)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = context.build_critic(policy.obs_dim, 0)
        self.actor_optimizer = make_adam([p for p in policy.parameters() if p.requires_grad], config.actor_lr)
        self.actor_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_optimizer, config.steps)
        self.critic_optimizer = make_adam(list(self.critic.parameters()), config.critic_lr)
        self.value_optimizer = make_adam(list(self.value.parameters()), config.value_lr)
        self.target_pairs = (list(self.target_critic.parameters()), list(self.critic.parameters()))
        self.sample_generator = torch.Generator().manual_seed(context.seed)

    def step(self) -> dict[str, Any]:
        metrics = self.update(self.data.sample(self.config.batch_size, self.sample_generator))
        return metrics

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, action = batch["obs"], batch["action"]
        with torch.no_grad():
            next_value = self.value.value(batch["next_obs"]).mean(0)
            target_q = self.target_critic.q_value(obs, action).min(0).values

        value = self.value.value(obs)  # (E_V, B)
        diff = target_q - value
        value_loss = expectile_loss(diff, cfg.expectile)
        self.value_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_optimizer.step()

        target = batch["reward"] + batch["bootstrap"] * next_value
        q = self.critic.q_value(obs, action)
        critic_loss = (q - target).square().mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        advantage = target_q - value.detach().mean(0)
        weight = advantage_weight(advantage, cfg.beta)
        policy_action = self.policy.sample_chunk_norm(obs.unsqueeze(1), True, None)[:, 0]
        actor_loss = (weight * (policy_action - action).square().sum(-1)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        self.actor_schedule.step()

        with torch.no_grad():
            torch._foreach_lerp_(self.target_pairs[0], self.target_pairs[1], cfg.tau)
        self.grad_steps += 1
        return {
            "value_loss": value_loss.detach(), "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
            "advantage_mean": advantage.mean(), "q_mean": q.detach().mean(),
        }

    def _optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        return self.actor_optimizer, self.critic_optimizer, self.value_optimizer

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "value": self.value.state_dict(),
            "optimizers": [o.state_dict() for o in self._optimizers()],
            "actor_schedule": self.actor_schedule.state_dict(),
            "sample_generator": self.sample_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.value.load_state_dict(state["value"])
        for optimizer, optimizer_state in zip(self._optimizers(), state["optimizers"]):
            optimizer.load_state_dict(optimizer_state)
        self.actor_schedule.load_state_dict(state["actor_schedule"])
        self.sample_generator.set_state(state["sample_generator"])

    def inference_policy(self):
        return self.policy.eval()
