"""The Critic contract: state values V(s) and action values Q(s, a), as ensembles.

Every method returns one estimate per ensemble member, shape (E, B), so that pessimistic
(min over members) or optimistic aggregations are the caller's explicit choice.
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


class Critic(nn.Module, ABC):
    """Register subclasses with `@register("critic", name)`. Inputs are normalised observations/actions."""

    config_class: ClassVar[type[CriticConfig]] = CriticConfig

    def __init__(self, config: CriticConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        self.config = config
        self.obs_dim = obs_dim
        self.action_dim = action_dim

    @abstractmethod
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s): obs (B, obs_dim) -> (E, B)."""

    @abstractmethod
    def q_value(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q(s, a): obs (B, obs_dim), action (B, action_dim) -> (E, B)."""
