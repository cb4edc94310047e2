"""The Algorithm contract: it owns the optimisers, targets and critics, and updates a policy.

Keeping these out of the policy (as LeRobot's RL algorithms do) means the deployable artefact is the
policy alone, while a checkpoint's training state holds the rest for resuming.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from robotune.core.config import PluginConfig
from robotune.core.policy import Policy


@dataclass
class AlgorithmConfig(PluginConfig):
    steps: int = 1000  # gradient updates in the whole run
    batch_size: int = 256


class Algorithm(ABC):
    """Register subclasses with `@register("algorithm", name)`; select with `algo=<name>`."""

    config_class: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig

    def __init__(self, config: AlgorithmConfig, policy: Policy) -> None:
        self.config = config
        self.policy = policy

    @abstractmethod
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One update on a raw batch {"obs": (B, To, Do), "action": (B, H, Da), ...}; returns metrics."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: nested dicts/lists of tensors and plain values."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def inference_policy(self) -> Policy:
        """The policy to evaluate and deploy (an EMA copy, for example)."""
        return self.policy
