"""A2PR (Liu et al. 2024): advantage-guided policy regularisation with an advantage-filtered VAE.

Trained alongside the critic on every update (`update`), with the engine's critic (attached by
`attach_critic`) and its TD target y for the batch:

    L_V   = E[(V(s) − y)²]                                  a state value, 4x256 (A2PR's t_Q ≈ y)
    m     = 1[Q_1(s, a) > V(s)]                             the data's better-than-average actions
    L_vae = E[w_vae · m · (dec − a)²] + 0.5 · KL             the VAE learns only those

The actor is pulled toward the better of the dataset action and the VAE's reconstruction of the
policy's own action, and only where that one beats V:

    ã   = VAE(s, π(s)),   A(x) = Q_1(s, x) − V(s)
    â   = ã if A(ã) ≥ A(a) else a
    M   = mask · (1[A(ã) ≥ 0] + 1[A(a) > 0])              (V detached)
    L_π = −α E[Q_1(s, π(s))] / E|Q_1| + E[M · (π(s) − â)²]

â depends on π through the VAE, so the BC gradient flows through the decoder into π as in A2PR's
code; the VAE's weights take no gradient from it (A2PR's own optimiser cleared those anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robotune.core.critic import Critic
from robotune.core.registry import register
from robotune.core.regularizer import Regularizer, RegularizerConfig
from robotune.plugins.auxiliary_networks import BehaviourVAE, mlp
from robotune.training.optimizers import make_adam


@dataclass
class A2PRConfig(RegularizerConfig):
    mask: float = 1.0  # the BC mask weight (hopper 0.4, walker2d and halfcheetah 1.0)
    vae_weight: float = 1.0  # w_vae (walker2d 1.5)
    hidden_dim: int = 750  # VAE
    value_hidden_dim: int = 256
    vae_lr: float = 1e-3
    value_lr: float = 3e-4
    seed: int = 0


@register("regularizer", "a2pr")
class A2PRRegularizer(Regularizer):
    config: A2PRConfig

    def __init__(self, config: A2PRConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__(config, obs_dim, action_dim)
        self.vae = BehaviourVAE(obs_dim, action_dim, config.hidden_dim)
        self.value = mlp(obs_dim, config.value_hidden_dim, 1, 3)
        self.vae_optimizer = make_adam(list(self.vae.parameters()), config.vae_lr)
        self.value_optimizer = make_adam(list(self.value.parameters()), config.value_lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.critics: list[Critic] = []  # a list, so the engine's critic is not saved as part of this module

    def attach_critic(self, critic: Critic) -> None:
        self.critics = [critic]
        self.generator = torch.Generator(device=next(self.vae.parameters()).device).manual_seed(self.config.seed)

    def q_first(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if not self.critics:
            raise RuntimeError("regularizer a2pr needs the engine's critic; use it with algo=offline or algo=actor_critic")
        return self.critics[0].q_value(obs, action)[0]

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        obs, action = batch["obs"], batch["action"]
        value_loss = (self.value(obs).squeeze(-1) - batch["q_target"]).square().mean()
        self.value_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_optimizer.step()
        with torch.no_grad():
            better = (self.q_first(obs, action) > self.value(obs).squeeze(-1)).float()
        reconstruction, kl = self.vae.reconstruct(obs, action, self.generator)
        vae_loss = (self.config.vae_weight * better[:, None] * (reconstruction - action).square()).mean() + 0.5 * kl.mean()
        self.vae_optimizer.zero_grad(set_to_none=True)
        vae_loss.backward()
        self.vae_optimizer.step()
        return {"a2pr_value_loss": value_loss.detach(), "a2pr_vae_loss": vae_loss.detach(), "a2pr_better_fraction": better.mean()}

    def actor_term(
        self, batch: dict[str, torch.Tensor], policy_action: torch.Tensor, q_value: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        obs, action = batch["obs"], batch["action"]
        self.vae.requires_grad_(False)  # the BC gradient reaches π through the decoder; the VAE's own weights learn in `update`
        reconstruction, _ = self.vae.reconstruct(obs, policy_action, self.generator)
        self.vae.requires_grad_(True)
        value = self.value(obs).squeeze(-1).detach()
        advantage_reconstruction = self.q_first(obs, reconstruction) - value
        advantage_data = self.q_first(obs, action) - value
        take_reconstruction = (advantage_reconstruction >= advantage_data).float()[:, None]
        bc_target = take_reconstruction * reconstruction + (1 - take_reconstruction) * action
        mask = self.config.mask * ((advantage_reconstruction >= 0).float() + (advantage_data > 0).float())
        bc = (mask[:, None] * (policy_action - bc_target).square()).mean()
        return self.config.weight * bc, {"a2pr_bc": bc.detach()}

    def extra_state(self) -> dict[str, Any]:
        return {"vae_optimizer": self.vae_optimizer.state_dict(), "value_optimizer": self.value_optimizer.state_dict(), "generator": self.generator.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.vae_optimizer.load_state_dict(state["vae_optimizer"])
        self.value_optimizer.load_state_dict(state["value_optimizer"])
        self.generator.set_state(state["generator"])
