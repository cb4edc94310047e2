"""The Critic contract: state values V(s) and action values Q(s, a), as ensembles.

Every method returns one estimate per ensemble member, shape (E, B), so that pessimistic (min over
members) or optimistic aggregations are the caller's explicit choice. Inputs are flat vectors in the
units the algorithm chooses (normalised observation histories and flattened action chunks here).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from robotune.core.config import PluginConfig


@dataclass
class CriticConfig(PluginConfig):
    num_members: int = 2  # ensemble size

    def __post_init__(self) -> None:
        if self.num_members < 1:
            raise ValueError(f"critic.num_members must be >= 1, got {self.num_members}")


class Critic(nn.Module, ABC):
    """Register subclasses with `@register("critic", name)`; select with `critic=<name>`. Built as
    `Critic(config, obs_dim, action_dim)`; action_dim is 0 for a state-value critic."""

    config_class: ClassVar[type[CriticConfig]] = CriticConfig

    def __init__(self, config: CriticConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        self.config, self.obs_dim, self.action_dim = config, obs_dim, action_dim

    @abstractmethod
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s): obs (B, obs_dim) -> (E, B)."""

    @abstractmethod
    def q_value(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q(s, a): obs (B, obs_dim), action (B, action_dim) -> (E, B)."""

    def first_q_value(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q_0(s, a) of member 0 alone, (B,) (TD3's actor loss); override to skip computing the other members."""
        return self.q_value(obs, action)[0]
