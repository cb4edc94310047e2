"""CDSA (Liu, Yang & Li 2024, arXiv 2406.07541): correct a trained policy's actions toward dense data at inference.

A denoising score model s_θ(s, ã, σ) ≈ ∇_ã log p_σ(ã | s) of the dataset's action density,
smoothed at noise level σ, is fitted before training (`fit`) by denoising score matching over
noise levels σ_1 > … > σ_L spaced geometrically (Song & Ermon 2019):

    ã = a + σ ε,   ε ~ N(0, I),   L = E_σ E[σ² ‖s_θ(s, ã, σ) + ε / σ‖²]

It changes nothing during training (its actor term is zero). At inference, `correct_action` moves
the policy's action uphill on the data density in `correction_steps` steps at the smallest σ,

    a ← clip(a + η σ_L² s_θ(s, a, σ_L), −1, 1)

For data concentrated at a mode μ, s ≈ (μ − a) / σ², so each step closes a fraction η of the gap.
The checkpoint ships the score model (`corrects_actions`), and `load_checkpoint` wraps the policy,
so `robotune eval` and `robotune deploy` apply the correction with no extra flags.

A simplification of the paper, stated: CDSA estimates the score in state space and maps it to an
action change with an inverse-dynamics model; this file takes the score over actions given the
state directly, which needs no dynamics model and acts on the same quantity, the action.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from robotune.core.dataset import EpisodeDataset
from robotune.core.registry import register
from robotune.core.regularizer import Regularizer, RegularizerConfig
from robotune.plugins.auxiliary_networks import fit_model, mlp


@dataclass
class CDSAConfig(RegularizerConfig):
    sigma_max: float = 0.5  # noise levels, normalised action units
    sigma_min: float = 0.05
    num_sigmas: int = 8
    hidden_dim: int = 256
    score_steps: int = 5000
    score_batch_size: int = 256
    score_lr: float = 1e-3
    correction_steps: int = 2
    step_fraction: float = 0.5  # η
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.sigma_min <= self.sigma_max or self.num_sigmas < 1:
            raise ValueError(f"need 0 < regularizer.cdsa.sigma_min <= sigma_max and num_sigmas >= 1, got {self.sigma_min}, {self.sigma_max}, {self.num_sigmas}")


@register("regularizer", "cdsa")
class CDSARegularizer(Regularizer):
    config: CDSAConfig
    corrects_actions = True

    def __init__(self, config: CDSAConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__(config, obs_dim, action_dim)
        self.score_network = mlp(obs_dim + action_dim + 1, config.hidden_dim, action_dim, 3)
        sigmas = np.geomspace(config.sigma_max, config.sigma_min, config.num_sigmas)
        self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float32))

    def score(self, obs: torch.Tensor, action: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """s_θ(s, a, σ): obs (B, obs_dim), action (B, action_dim), σ (B,) -> (B, action_dim).
        The network predicts σ·s (unit scale at every level) and is divided by σ here."""
        return self.score_network(torch.cat([obs, action, sigma.log()[:, None]], -1)) / sigma[:, None]

    def score_matching_loss(self, obs: torch.Tensor, action: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        level = torch.randint(len(self.sigmas), (len(obs),), generator=generator).to(obs.device)
        sigma = self.sigmas[level]
        noise = torch.randn(action.shape, generator=generator).to(obs.device)
        score = self.score(obs, action + sigma[:, None] * noise, sigma)
        return (sigma[:, None] * score + noise).square().sum(-1).mean()

    def fit(self, dataset: EpisodeDataset) -> dict[str, float]:
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed)
        parameters = list(self.score_network.parameters())
        losses = fit_model(lambda o, a: self.score_matching_loss(o, a, generator), parameters, dataset, cfg.score_steps, cfg.score_batch_size, cfg.score_lr, generator)
        return {"cdsa_score_loss": losses[-1] if losses else math.nan}

    def actor_term(
        self, batch: dict[str, torch.Tensor], policy_action: torch.Tensor, q_value: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return torch.zeros((), device=policy_action.device), {}

    @torch.no_grad()
    def correct_action(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Normalised obs (B, obs_dim) and action (B, action_dim) -> the corrected action (B, action_dim)."""
        sigma = self.sigmas[-1].expand(len(obs))
        step = self.config.step_fraction * self.sigmas[-1] ** 2
        for _ in range(self.config.correction_steps):
            action = (action + step * self.score(obs, action, sigma)).clamp(-1.0, 1.0)
        return action
