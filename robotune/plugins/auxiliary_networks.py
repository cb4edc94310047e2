"""Auxiliary models that offline regularizers fit to a dataset: an MLP, a behaviour VAE, and the fitting loop.

SPOT and A2PR both model the behaviour policy with the conditional VAE of BCQ (Fujimoto et al.
2019): encoder (s, a) -> N(μ, σ²) over a latent of 2·|A| dims, decoder (s, z) -> tanh action. Its
negative ELBO is SPOT's density proxy,

    −log π_β(a|s) ≈ E_z[mean_i (dec(s, z)_i − a_i)²] + β_KL · mean_j KL(N(μ_j, σ_j²) ‖ N(0, 1)),

with log σ clamped to [−4, 15] as in SPOT's vae.py. All inputs are in the engine's units
(z-scored states, actions in [-1, 1]). Every random draw comes from a generator the caller owns.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from robotune.core.dataset import EpisodeDataset
from robotune.training.optimizers import make_adam

LOG_STD_MIN, LOG_STD_MAX = -4.0, 15.0


def mlp(in_dim: int, hidden_dim: int, out_dim: int, hidden_layers: int) -> nn.Sequential:
    """(Linear, ReLU) x hidden_layers, then Linear."""
    widths = [in_dim] + [hidden_dim] * hidden_layers
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], out_dim))


class BehaviourVAE(nn.Module):
    """BCQ's conditional VAE: obs (B, obs_dim), action (B, action_dim) in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int = 750) -> None:
        super().__init__()
        self.latent_dim = 2 * action_dim
        self.encoder = mlp(obs_dim + action_dim, hidden_dim, 2 * self.latent_dim, 2)
        self.decoder = mlp(obs_dim + self.latent_dim, hidden_dim, action_dim, 2)

    def encode(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> μ, σ (B, latent_dim)."""
        mean, log_std = self.encoder(torch.cat([obs, action], -1)).chunk(2, -1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()

    def decode(self, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(torch.cat([obs, latent], -1)))

    def reconstruct(self, obs: torch.Tensor, action: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A reconstruction of `action` through one sampled latent (B, action_dim), and the KL (B,) of its posterior."""
        mean, std = self.encode(obs, action)
        latent = mean + std * torch.randn(std.shape, generator=generator, device=std.device)
        kl = -0.5 * (1 + 2 * std.log() - mean.square() - std.square()).mean(-1)
        return self.decode(obs, latent), kl

    def negative_elbo(self, obs: torch.Tensor, action: torch.Tensor, kl_weight: float, generator: torch.Generator) -> torch.Tensor:
        """SPOT's elbo_loss with one latent sample: (B,), lower where the data are dense."""
        reconstruction, kl = self.reconstruct(obs, action, generator)
        return (reconstruction - action).square().mean(-1) + kl_weight * kl


def fit_model(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    parameters: list[nn.Parameter],
    dataset: EpisodeDataset,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
) -> list[float]:
    """Adam on `loss_fn(obs, action)` over uniform batches of the dataset's (normalised) steps; the losses per step."""
    device = parameters[0].device
    obs = torch.from_numpy(np.array(dataset.obs, np.float32)).to(device)
    action = torch.from_numpy(np.array(dataset.action, np.float32)).to(device)
    optimizer = make_adam(parameters, lr)
    losses = []
    for _ in range(steps):
        index = torch.randint(len(obs), (batch_size,), generator=generator).to(device)
        loss = loss_fn(obs[index], action[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
