"""The Regularizer contract: extra terms for an algorithm's actor and critic losses.

Offline RL methods differ mostly here (TD3+BC's behaviour-cloning term, SPOT's density penalty,
SAC-RND's anti-exploration bonus), so an algorithm stays generic and the method lives in one file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from robotune.core.config import PluginConfig
from robotune.core.dataset import EpisodeDataset


@dataclass
class RegularizerConfig(PluginConfig):
    weight: float = 1.0


class Regularizer(ABC):
    """Register subclasses with `@register("regularizer", name)`."""

    config_class: ClassVar[type[RegularizerConfig]] = RegularizerConfig

    def __init__(self, config: RegularizerConfig) -> None:
        self.config = config

    def fit(self, dataset: EpisodeDataset) -> dict[str, float]:
        """Fit auxiliary models (a behaviour density, a random network) before training; none by default."""
        return {}

    @abstractmethod
    def actor_term(self, batch: dict[str, torch.Tensor], policy_action: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """A scalar added to the actor loss, given the policy's actions for the batch's observations."""

    def critic_term(
        self, batch: dict[str, torch.Tensor], next_action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """A penalty subtracted from the critic's bootstrap target, shape (B,); zero by default."""
        return torch.zeros(next_action.shape[0], device=next_action.device), {}
