"""The Regularizer contract: what an offline (or online) actor-critic method adds to a generic engine.

Offline RL methods differ mostly here (TD3+BC's Q-scaled behaviour-cloning term, SPOT's density
penalty, SAC-RND's anti-exploration bonus, CDSA's inference-time action correction), so the
engine stays generic and each method lives in one file. A regularizer is an `nn.Module`: its
auxiliary models (a behaviour VAE, a random network) are submodules, and their weights and
optimiser state are saved with the run.

Batches are dicts of flat tensors in the engine's normalised units:
    obs (B, obs_dim), action (B, action_dim), reward (B,), next_obs (B, obs_dim),
    bootstrap (B,) (gamma**k, zero after termination), and for dataset batches next_action (B, action_dim).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from robotune.core import registry
from robotune.core.config import PluginConfig, build_config
from robotune.core.dataset import EpisodeDataset


@dataclass
class RegularizerConfig(PluginConfig):
    weight: float = 1.0


class Regularizer(nn.Module, ABC):
    """Register subclasses with `@register("regularizer", name)`; select with `regularizer=[name, ...]`.

    Built as `Regularizer(config, obs_dim, action_dim)`.
    """

    config_class: ClassVar[type[RegularizerConfig]] = RegularizerConfig
    corrects_actions: ClassVar[bool] = False  # True when `correct_action` changes actions at inference time

    def __init__(self, config: RegularizerConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        self.config, self.obs_dim, self.action_dim = config, obs_dim, action_dim

    def fit(self, dataset: EpisodeDataset) -> dict[str, float]:
        """Pre-train auxiliary models on the dataset before the engine starts (none by default)."""
        return {}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One training step of the auxiliary models, once per engine gradient step (none by default)."""
        return {}

    @abstractmethod
    def actor_term(
        self, batch: dict[str, torch.Tensor], policy_action: torch.Tensor, q_value: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """A scalar added to the actor loss, given the policy's actions (B, action_dim) for the batch's
        observations and their Q value (B,) (TD3+BC and SPOT scale their term by its magnitude)."""

    def critic_term(
        self, batch: dict[str, torch.Tensor], next_action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """A penalty (B,) subtracted from the critic's bootstrap target; zero by default."""
        return torch.zeros(next_action.shape[0], device=next_action.device), {}

    def correct_action(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Inference-time correction of actions (B, action_dim); identity unless `corrects_actions`."""
        return action

    def extra_state(self) -> dict[str, Any]:
        """Non-module state to resume (optimiser states); nested dicts of tensors and plain values."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None: ...


def build_regularizer(name: str, values: Any, obs_dim: int, action_dim: int) -> Regularizer:
    """The regularizer plugin `name`, configured by `values` (its node under `regularizer.<name>`),
    for flat observations of `obs_dim` and actions of `action_dim`. The training loop and the
    checkpoint loader both build regularizers through here."""
    regularizer_class = registry.get("regularizer", name)
    config = build_config(regularizer_class.config_class, {**values, "name": name}, f"regularizer.{name}")
    return regularizer_class(config, obs_dim, action_dim)


class ActionCorrectedPolicy:
    """A policy whose executed actions pass through regularizers' `correct_action` (CDSA's
    inference-time correction). Checkpoints store the correctors' weights beside the policy's, and
    `load_checkpoint` rebuilds this wrapper, so evaluation and deployment apply the correction with
    no extra flags. Everything but `predict_chunk` is read from the wrapped policy.

    The correction sees the engine's units: the normalised, flattened observation window
    (B, obs_horizon * obs_dim) and the chunk's first act_steps actions, normalised and flattened.
    """

    def __init__(self, policy, correctors: list[Regularizer]) -> None:
        self.policy, self.correctors = policy, correctors

    def __getattr__(self, name: str):
        return getattr(self.policy, name)

    def export_for_inference(self) -> ActionCorrectedPolicy:
        return ActionCorrectedPolicy(self.policy.export_for_inference(), self.correctors)

    @torch.inference_mode()
    def predict_chunk(self, obs: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Raw chunk (B, H, Da) for raw obs (B, To, Do), its executed part corrected."""
        chunk = self.policy.predict_chunk(obs, deterministic, generator).clone()
        executed, batch = self.policy.config.act_steps, obs.shape[0]
        obs_norm = self.policy.obs_normalizer.normalize(obs.float()).flatten(1)
        action_norm = self.policy.action_normalizer.normalize(chunk[:, :executed]).flatten(1)
        for corrector in self.correctors:
            action_norm = corrector.correct_action(obs_norm, action_norm)
        corrected = action_norm.view(batch, executed, -1).clamp(-1.0, 1.0)
        chunk[:, :executed] = self.policy.action_normalizer.unnormalize(corrected)
        return chunk
