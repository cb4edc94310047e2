"""The Algorithm contract: it owns optimisers, critics, buffers and regularizers, and improves a policy.

One contract covers every kind of learning, so that `robotune train` runs behaviour cloning,
on-policy RL, off-policy RL and offline RL through the same loop, logger, checkpoints and
evaluation. The loop builds a `TrainingContext` (the policy, the task, the dataset if the algorithm
wants one, an environment factory, critic and regularizer builders, device and generator) and
calls `step()` until `config.steps` is reached. What one step is belongs to the algorithm: one
gradient update for BC, one rollout plus its epochs for PPO, a batch of environment steps plus
updates for SAC. An algorithm counts its own gradient and environment steps, and the loop logs
metrics against both.

Keeping critics and optimisers out of the policy (as LeRobot's RL algorithms do) means the
deployable artefact is the policy alone; the checkpoint's training state holds the rest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch

from robotune.core.config import PluginConfig
from robotune.core.policy import Policy

if TYPE_CHECKING:
    import gymnasium as gym

    from robotune.core.critic import Critic
    from robotune.core.dataset import EpisodeDataset
    from robotune.core.regularizer import Regularizer
    from robotune.core.task import Task


@dataclass
class AlgorithmConfig(PluginConfig):
    steps: int = 1000  # calls to Algorithm.step() in the whole run (an update, or an RL iteration)
    batch_size: int = 256


@dataclass
class TrainingContext:
    """Everything an algorithm may use. Built by the training loop from the run config.

    `make_envs(num_envs, mode)` returns a Gymnasium vector env, "sync" or "async" (subprocess
    workers), that autoresets with the final observation kept in `info["final_obs"]`; seed it at
    its first reset. `make_chunk_rollout(num_envs, mode, obs_horizon, act_steps, gamma)` returns a
    chunk rollout over that many environments, in this process or on the run's Ray workers
    (`runtime=ray`); its `collect` takes a `Decider` (robotune/rollout/chunk_rollout.py). `build_critic(obs_dim, action_dim)` builds the configured `critic=` plugin
    (action_dim 0 for a state-value critic) on `device`; `build_regularizers(obs_dim, action_dim)`
    builds the configured `regularizer=` list. `generator` (on `device`) is the run's source of
    randomness, saved with every checkpoint. `work_dir` is the run directory, for large state that
    lives beside the checkpoints (a memory-mapped replay buffer).

    `rank` and `world_size` place this process among the processes training the run together
    (torchrun); only an algorithm with `supports_distributed` is given more than one. `seed` and
    `generator` are then this rank's own, and the algorithm splits its batch and averages gradients.
    """

    policy: Policy
    task: Task
    dataset: EpisodeDataset | None
    make_envs: Callable[..., gym.vector.VectorEnv]
    make_chunk_rollout: Callable[..., Any]
    build_critic: Callable[[int, int], Critic]
    build_regularizers: Callable[[int, int], list[Regularizer]]
    device: torch.device
    generator: torch.Generator
    work_dir: Path
    seed: int
    rank: int = 0
    world_size: int = 1


class Algorithm(ABC):
    """Register subclasses with `@register("algorithm", name)`; select with `algo=<name>`.

    Override `needs_dataset` when the algorithm learns from a dataset (BC, offline RL, online RL
    that mixes offline data in): the loop then loads or records one and passes it in the context.
    """

    config_class: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig
    # trains with several processes under torchrun (see TrainingContext.world_size)
    supports_distributed: ClassVar[bool] = False

    @classmethod
    def needs_dataset(cls, config: AlgorithmConfig) -> bool:
        """Whether the loop should load (`data.path`) or record the dataset for a run with this config."""
        return False

    def __init__(self, config: AlgorithmConfig, context: TrainingContext) -> None:
        self.config = config
        self.context = context
        self.policy = context.policy
        self.grad_steps = 0  # gradient updates made so far
        self.env_steps = 0  # environment steps taken so far, over all environments

    @abstractmethod
    def step(self) -> dict[str, float]:
        """Advance by one step (see the module docstring) and return metrics to log."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: nested dicts/lists of tensors and plain values."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def counters(self) -> dict[str, int]:
        return {"grad_steps": self.grad_steps, "env_steps": self.env_steps}

    def load_counters(self, state: dict[str, int]) -> None:
        self.grad_steps, self.env_steps = int(state["grad_steps"]), int(state["env_steps"])

    def inference_policy(self) -> Policy:
        """The policy to evaluate and deploy (an EMA copy, for example)."""
        return self.policy

    def action_correctors(self) -> list[Regularizer]:
        """Regularizers that correct actions at inference time; checkpoints ship them with the policy."""
        return []

    def close(self) -> None:
        """Release environments and files; called once at the end of the run."""
