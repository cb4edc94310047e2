"""The Policy contract: an observation history in, an action chunk out.

Shapes (raw, un-normalised units unless the name says `_norm`):
    obs     (B, obs_horizon, obs_dim)   the latest `obs_horizon` observations, oldest first
    action  (B, horizon, action_dim)    the chunk predicted from the newest observation on;
                                        a controller executes its first `act_steps` and replans

A policy carries its normalisers as submodules, so saving its state dict saves them too.
Subclasses implement `compute_loss` and `sample_chunk_norm`; everything else is shared.

Rules a policy author can rely on (and must respect):
- Normalisers map the dataset's per-dimension min/max to [-1, 1] (RL from scratch: the task's action
  bounds, identity for observations; observations may be z-scored instead); predicted chunks are
  clamped to [-1, 1] before unnormalising, so actions never leave the demonstrated (or allowed) range.
- Every random draw, in training and sampling, comes from the `generator` passed in: a run and its
  resumption draw the same numbers.
- The module's buffers must have sizes fixed by the config and spec: a checkpoint is loaded by
  building the policy from its config, then loading the weights into it.
- A policy without parameters is valid (BC then only fits its normalisers); the optimiser is built
  only over parameters that exist.
- A policy never sees the dataset: what it needs from the data reaches it through its normalisers.
  A model fitted to the data (a behaviour density, a random network) is a regularizer's job.
- An EMA copy (BC) averages parameters only; buffers keep the values the policy was built with.

Policies that RL fine-tuning can improve by policy gradient also implement `SupportsLikelihood`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from robotune.core.config import PluginConfig
from robotune.core.normalization import Normalizer
from robotune.core.spec import TaskSpec


@dataclass
class PolicyConfig(PluginConfig):
    obs_horizon: int = 2  # observations the policy conditions on
    horizon: int = 16  # actions predicted per chunk
    act_steps: int = 8  # actions executed before replanning (<= horizon)

    def __post_init__(self) -> None:
        for field_name in ("obs_horizon", "horizon", "act_steps"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"policy.{field_name} must be >= 1, got {getattr(self, field_name)}")
        if self.act_steps > self.horizon:
            raise ValueError(f"policy.act_steps ({self.act_steps}) must not exceed policy.horizon ({self.horizon})")


class Policy(nn.Module, ABC):
    """Base class for action-chunk policies. Register subclasses with `@register("policy", name)`."""

    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig

    def __init__(self, config: PolicyConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__()
        if obs_normalizer.dim != spec.obs_dim or action_normalizer.dim != spec.action_dim:
            raise ValueError(f"normalizer sizes (obs {obs_normalizer.dim}, action {action_normalizer.dim}) do not match task "
                             f"'{spec.name}' (obs {spec.obs_dim}, action {spec.action_dim})")
        self.config, self.spec = config, spec
        self.obs_normalizer, self.action_normalizer = obs_normalizer, action_normalizer

    @property
    def obs_dim(self) -> int:
        return self.spec.obs_dim

    @property
    def action_dim(self) -> int:
        return self.spec.action_dim

    @abstractmethod
    def compute_loss(
        self, obs_norm: torch.Tensor, action_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on a normalised batch: obs_norm (B, To, Do), action_norm (B, H, Da).

        Any noise the loss needs (diffusion timesteps and noise) is drawn from `generator`."""

    @abstractmethod
    def sample_chunk_norm(
        self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        """A normalised chunk (B, H, Da) for obs_norm (B, To, Do). All randomness comes from `generator`."""

    def normalize_obs(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw observation windows, (B, To, Do) or flattened (B, To * Do), array or tensor -> normalised
        windows (B, To, Do) on the policy's device: what an RL engine feeds the policy from a rollout or replay."""
        obs = torch.as_tensor(obs, device=self.obs_normalizer.center.device)
        return self.obs_normalizer.normalize(obs.reshape(len(obs), self.config.obs_horizon, self.obs_dim))

    def loss(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on a raw batch {"obs": (B, To, Do), "action": (B, H, Da)}."""
        return self.compute_loss(
            self.obs_normalizer.normalize(batch["obs"]), self.action_normalizer.normalize(batch["action"]), generator
        )

    @torch.inference_mode()
    def predict_chunk(
        self, obs: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Raw action chunk (B, H, Da) for raw obs (B, To, Do).

        `deterministic=True` takes the policy's mode-seeking path (a Gaussian's mean, DDIM with eta=0);
        with a seeded `generator` either mode repeats exactly.
        """
        self.check_obs(obs)
        chunk_norm = self.sample_chunk_norm(self.obs_normalizer.normalize(obs.float()), deterministic, generator)
        return self.action_normalizer.unnormalize(chunk_norm.clamp(-1.0, 1.0))

    def check_obs(self, obs: torch.Tensor) -> None:
        """Raise a ValueError naming the expected shape unless obs is (B, obs_horizon, obs_dim)."""
        expected = (self.config.obs_horizon, self.obs_dim)
        if obs.ndim != 3 or tuple(obs.shape[1:]) != expected:
            raise ValueError(f"policy expects obs of shape (B, {expected[0]}, {expected[1]}), got {tuple(obs.shape)}")

    def export_for_inference(self) -> "Policy":
        """A frozen, fast version for evaluation and deployment, with the same `predict_chunk`; the
        policy itself (in eval mode) unless the policy has a faster inference path. Training and
        fine-tuning never go through it. Export again after the weights change."""
        return self.eval()

    def reset(self) -> None:
        """Forget any per-episode state; called when every environment the policy serves starts a new
        episode (an evaluation wave, a deploy episode). The state of an episode in progress, its
        observation window and the chunk being executed, is kept per environment by what runs the
        policy, so one environment can restart mid-chunk while the others continue. RL rollouts do
        that and never call reset: a policy trained by RL keeps no per-episode state of its own."""


@runtime_checkable
class SupportsLikelihood(Protocol):
    """What policy-gradient fine-tuning (PPO and its generative variants) needs from a policy.

    `sample_with_trace` draws a normalised chunk together with everything needed to score that same
    sample again later (a Gaussian: the chunk itself; diffusion: the denoising chain; flow
    matching: the noise and times), and its log-likelihood under the sampling weights (computed
    while sampling where that is free). `log_prob` scores a stored trace under the current weights:
    the exact log-density where the policy has one, or the surrogate its method uses. Both score
    only the chunk's first `act_steps` actions, the part that is executed.
    Fine-tuning calls these torch methods directly, never a NumPy fast path.
    """

    def sample_with_trace(
        self, obs_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """obs_norm (B, To, Do) -> chunk_norm (B, H, Da), a trace of tensors with leading dim B, log-likelihood (B,)."""
        ...

    def log_prob(self, obs_norm: torch.Tensor, trace: dict[str, torch.Tensor]) -> torch.Tensor:
        """obs_norm (B, To, Do), a trace from `sample_with_trace` -> log-likelihood (B,)."""
        ...
