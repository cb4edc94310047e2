"""SAC-RND (Nikulin et al. 2023): an anti-exploration bonus from random network distillation.

A predictor f(s, a) is trained to match a fixed random target g(s, a) on the dataset's pairs, so
its error is small in-distribution and large elsewhere. As in the authors' JAX code
(`switch_features=True`), the action is the feature and the state the context:

    f: h = ReLU(Bilinear(a, s)) -> ReLU(Linear) -> ReLU(Linear) -> Linear(embedding)
    g: h = ReLU(Linear(a)) -> ReLU(Linear) -> ReLU(γ(s) ⊙ Linear(h) + β(s)) -> Linear(embedding),  [γ, β] = Linear(s)

with the action z-scored over the dataset (states arrive z-scored). `fit` trains f for `rnd_steps`
updates (lr 3e-4) and freezes both; the bonus divides the error by the running std of the training
losses, so one β suits every dataset scale:

    b(s, a) = ‖f(s, a) − g(s, a)‖² / std_RND
    L_π = E[α log π(ã|s) − min_e Q_e(s, ã) + β b(s, ã)]                  (engine: algo.actor=sac algo.actor_q=min)
    y   = r + γ (1 − d) (min_e Q̄_e(s', ã') − α log π(ã'|s') − β b(s', ã'))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robotune.core.dataset import EpisodeDataset
from robotune.core.registry import register
from robotune.core.regularizer import Regularizer, RegularizerConfig
from robotune.plugins.auxiliary_networks import fit_model


@dataclass
class SACRNDConfig(RegularizerConfig):
    weight: float = 5.0  # β, in both actor and critic (tuned per dataset in the paper; see the presets)
    hidden_dim: int = 256
    embedding_dim: int = 32
    rnd_steps: int = 1000  # predictor updates before the RND is frozen (the authors' configs: 1 epoch x 1000)
    rnd_batch_size: int = 256
    rnd_lr: float = 3e-4
    seed: int = 0


class BilinearFirstPredictor(nn.Module):
    """f(s, a): a bilinear first layer joins action and state, then an MLP."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, embedding_dim: int) -> None:
        super().__init__()
        self.bilinear = nn.Bilinear(action_dim, obs_dim, hidden_dim)
        self.rest = nn.Sequential(nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, embedding_dim))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """h_k = Σ_ij a_i W_kij s_j + b_k as one product over the outer product a ⊗ s (B, |A|·|S|):
        torch's own bilinear kernel runs a small matrix product per output unit: at batch 1024, 3 x 11 -> 256 it took
        26-27 ms per forward and backward on one thread against 1.7-2.2 ms for this (same parameters, same result)."""
        outer = (action[:, :, None] * obs[:, None, :]).flatten(1)
        return self.rest(nn.functional.linear(outer, self.bilinear.weight.flatten(1), self.bilinear.bias))


class FiLMLastTarget(nn.Module):
    """g(s, a): an MLP over the action whose last hidden layer the state scales and shifts (FiLM)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, embedding_dim: int) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Linear(action_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU())
        self.last_hidden = nn.Linear(hidden_dim, hidden_dim)
        self.film = nn.Linear(obs_dim, 2 * hidden_dim)
        self.output = nn.Linear(hidden_dim, embedding_dim)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(obs).chunk(2, -1)
        return self.output(torch.relu(scale * self.last_hidden(self.first(action)) + shift))


@register("regularizer", "sac_rnd")
class SACRNDRegularizer(Regularizer):
    config: SACRNDConfig

    def __init__(self, config: SACRNDConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__(config, obs_dim, action_dim)
        with torch.random.fork_rng(devices=[]):  # the random target is part of the method: its own seed, the run's RNG untouched
            torch.manual_seed(config.seed)
            self.predictor = BilinearFirstPredictor(obs_dim, action_dim, config.hidden_dim, config.embedding_dim)
            self.target = FiLMLastTarget(obs_dim, action_dim, config.hidden_dim, config.embedding_dim).requires_grad_(False)
        self.register_buffer("action_mean", torch.zeros(action_dim))
        self.register_buffer("action_std", torch.ones(action_dim))
        self.register_buffer("error_std", torch.ones(()))

    def error(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """‖f(s, a) − g(s, a)‖² (B,), with the action z-scored over the dataset."""
        action = (action - self.action_mean) / self.action_std
        return (self.predictor(obs, action) - self.target(obs, action)).square().sum(-1)

    def bonus(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """b(s, a) (B,): the error in units of the training errors' std."""
        return self.error(obs, action) / self.error_std

    def fit(self, dataset: EpisodeDataset) -> dict[str, float]:
        cfg = self.config
        action = np.asarray(dataset.action, np.float64)
        with torch.no_grad():
            self.action_mean.copy_(torch.as_tensor(action.mean(0)))
            self.action_std.copy_(torch.as_tensor(action.std(0) + 1e-3))
        generator = torch.Generator().manual_seed(cfg.seed)
        self.predictor.requires_grad_(True)
        losses = fit_model(lambda o, a: self.error(o, a).mean(), list(self.predictor.parameters()), dataset, cfg.rnd_steps, cfg.rnd_batch_size, cfg.rnd_lr, generator)
        self.predictor.requires_grad_(False)
        with torch.no_grad():  # the authors' running std of RND losses, over the training steps
            self.error_std.copy_(torch.tensor(float(np.std(losses)) if len(losses) > 1 else 1.0).clamp(min=1e-6))
        return {"rnd_loss": losses[-1] if losses else float("nan")}

    def actor_term(
        self, batch: dict[str, torch.Tensor], policy_action: torch.Tensor, q_value: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        bonus = self.bonus(batch["obs"], policy_action).mean()
        return self.config.weight * bonus, {"rnd_bonus_policy": bonus.detach()}

    def critic_term(self, batch: dict[str, torch.Tensor], next_action: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        penalty = self.config.weight * self.bonus(batch["next_obs"], next_action)
        return penalty, {"rnd_bonus_next": penalty.detach().mean()}
