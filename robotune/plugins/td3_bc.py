"""TD3+BC (Fujimoto & Gu 2021): behaviour cloning added to TD3's actor loss.

    L_π = −α E[Q_1(s, π(s))] / E|Q_1(s, π(s))| + weight · MSE(π(s), a)

The Q term and its normalisation (α = `algo.q_weight` = 2.5, `algo.normalize_q=true`) belong to the
engine (`robotune/plugins/actor_critic.py`); this file adds the MSE, averaged over batch and action
dimensions as `F.mse_loss` does in CORL's td3_bc.py. The critic is plain TD3.
"""

from __future__ import annotations

import torch
from torch import nn

from robotune.core.registry import register
from robotune.core.regularizer import Regularizer, RegularizerConfig


@register("regularizer", "td3_bc")
class TD3BCRegularizer(Regularizer):
    config: RegularizerConfig

    def actor_term(
        self, batch: dict[str, torch.Tensor], policy_action: torch.Tensor, q_value: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """policy_action (B, action_dim), batch["action"] (B, action_dim) -> weight · MSE."""
        bc = nn.functional.mse_loss(policy_action, batch["action"])
        return self.config.weight * bc, {"td3_bc_mse": bc.detach()}
