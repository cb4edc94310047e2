"""ReBRAC (Tarasov et al. 2023): behaviour-regularised actor and critic, on TD3 with LayerNorm critics.

    L_π = E[β_actor ‖π(s) − a‖²] − E[min_e Q_e(s, π(s))] / E|min_e Q_e|
    y   = r + γ (1 − d) (min_e Q̄_e(s', ã') − β_critic ‖ã' − a'‖²)

‖·‖² sums over action dimensions (CORL's rebrac.py), unlike TD3+BC's mean. a' is the dataset's
next action and ã' the target policy's smoothed action. The Q term is the engine's
(`algo.actor_q=min algo.normalize_q=true algo.q_weight=1`); critic LayerNorm, 3x256 networks, batch
1024 and lr 1e-3 are in the `offline/rebrac_*` presets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robotune.core.registry import register
from robotune.core.regularizer import Regularizer, RegularizerConfig


@dataclass
class ReBRACConfig(RegularizerConfig):
    actor_weight: float = 0.01  # β_actor (hopper-medium)
    critic_weight: float = 0.01  # β_critic (hopper-medium)


@register("regularizer", "rebrac")
class ReBRACRegularizer(Regularizer):
    config: ReBRACConfig

    def actor_term(
        self, batch: dict[str, torch.Tensor], policy_action: torch.Tensor, q_value: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """β_actor · E[Σ_i (π(s)_i − a_i)²] over a batch (B, action_dim)."""
        bc = (policy_action - batch["action"]).square().sum(-1).mean()
        return self.config.actor_weight * bc, {"rebrac_actor_bc": bc.detach()}

    def critic_term(self, batch: dict[str, torch.Tensor], next_action: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """β_critic ‖ã' − a'‖² (B,), subtracted from the next state's value."""
        if not self.config.critic_weight:
            return super().critic_term(batch, next_action)
        if "next_action" not in batch:
            raise ValueError(
                "regularizer rebrac's critic penalty needs the dataset's next action, which online replay has none of; "
                "set regularizer.rebrac.critic_weight=0 when fine-tuning online"
            )
        penalty = self.config.critic_weight * (next_action - batch["next_action"]).square().sum(-1)
        return penalty, {"rebrac_critic_penalty": penalty.detach().mean()}
