"""SPOT (Wu et al. 2022): a support constraint through a behaviour density estimated by a VAE.

Before training, `fit` trains a conditional VAE (`auxiliary_networks.BehaviourVAE`) on the dataset
with the loss E[(dec − a)²] + β_KL · KL (β_KL 0.5, lr 1e-3, batch 256; SPOT's train_vae.py runs
1e5 steps, `vae_steps` here), then freezes it. The actor term is the VAE's negative ELBO of the
policy's action, a proxy for −log π_β(π(s)|s):

    L_π = −E[Q_1(s, π(s))] / E|Q_1| + λ · E[negELBO(s, π(s))]

The Q term is the engine's (`algo.normalize_q=true algo.q_weight=1`); gradients of the penalty reach
the policy only, because the VAE's parameters are frozen after the fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robotune.core.dataset import EpisodeDataset
from robotune.core.registry import register
from robotune.core.regularizer import Regularizer, RegularizerConfig
from robotune.plugins.auxiliary_networks import BehaviourVAE, fit_model


@dataclass
class SPOTConfig(RegularizerConfig):
    weight: float = 0.1  # λ (hopper-medium; the presets hold the per-dataset values)
    kl_weight: float = 0.5  # β_KL of the VAE's ELBO
    hidden_dim: int = 750
    vae_steps: int = 100_000
    vae_batch_size: int = 256
    vae_lr: float = 1e-3
    seed: int = 0


@register("regularizer", "spot")
class SPOTRegularizer(Regularizer):
    config: SPOTConfig

    def __init__(self, config: SPOTConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__(config, obs_dim, action_dim)
        self.vae = BehaviourVAE(obs_dim, action_dim, config.hidden_dim)
        self.generator = torch.Generator().manual_seed(config.seed)

    def fit(self, dataset: EpisodeDataset) -> dict[str, float]:
        def vae_loss(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
            reconstruction, kl = self.vae.reconstruct(obs, action, self.generator)
            return (reconstruction - action).square().mean() + self.config.kl_weight * kl.mean()

        cfg = self.config
        self.generator = torch.Generator(device=next(self.vae.parameters()).device).manual_seed(cfg.seed)
        self.vae.requires_grad_(True)
        losses = fit_model(vae_loss, list(self.vae.parameters()), dataset, cfg.vae_steps, cfg.vae_batch_size, cfg.vae_lr, self.generator)
        self.vae.requires_grad_(False).eval()
        return {"spot_vae_loss": losses[-1] if losses else float("nan")}

    def actor_term(
        self, batch: dict[str, torch.Tensor], policy_action: torch.Tensor, q_value: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """λ · E[negELBO(s, π(s))] over the batch (B, action_dim)."""
        density_penalty = self.vae.negative_elbo(batch["obs"], policy_action, self.config.kl_weight, self.generator).mean()
        return self.config.weight * density_penalty, {"spot_neg_elbo": density_penalty.detach()}

    def extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.vae.requires_grad_(False).eval()
