"""The Task contract: a spec, a Gymnasium environment and, optionally, a scripted expert.

Environments follow Gymnasium's API. A task whose episodes can succeed reports
`info["is_success"]` (a bool) on every step; the evaluation harness and the data generator read it
with `info.get("is_success")`, and for a task without it (MuJoCo locomotion) they report returns
alone. A task may also turn a return into a normalised score (D4RL's convention: 0 for a random
policy, 100 for an expert) with `normalized_score`.

Domain randomisation is a task's own config: fields on its `TaskConfig` subclass, off by default, drawn
at `env.reset(seed=...)` so a seed reproduces an episode. The built-in `reach_around` has masses,
friction, actuator gains, observation noise and action delay (see `ReachAroundConfig`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np

from robotune.core import registry
from robotune.core.config import PluginConfig, build_config
from robotune.core.spec import TaskSpec


class Expert(Protocol):
    """A scripted demonstrator. `reset` is called with the first observation of each episode."""

    def reset(self, obs: np.ndarray, rng: np.random.Generator) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


@dataclass
class TaskConfig(PluginConfig):
    pass


class Task(ABC):
    """Base class for tasks. Register subclasses with `@register("task", name)`."""

    config_class: ClassVar[type[TaskConfig]] = TaskConfig

    def __init__(self, config: TaskConfig) -> None:
        self.config = config

    @property
    @abstractmethod
    def spec(self) -> TaskSpec:
        """Spaces, limits and rates; must match what `make_env` returns."""

    @abstractmethod
    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """A fresh environment; seeding happens through `env.reset(seed=...)`.

        `render_mode="rgb_array"` makes `env.render()` return (H, W, 3) uint8 frames, for rollout videos
        (`robotune.rollout.video`); a task that cannot render raises ValueError naming the mode.
        """

    def make_expert(self) -> Expert | None:
        """A scripted expert for demonstrations, or None if the task has none."""
        return None

    # Numeric `info` keys the evaluation aggregates per episode: key -> "max", "final" or "mean"
    # (e.g. {"coverage": "max"}); each episode's value is recorded and their mean reported.
    info_metrics: ClassVar[dict[str, str]] = {}

    def normalized_score(self, episode_return: float) -> float | None:
        """100 * (R - random) / (expert - random) where reference returns exist, else None."""
        return None


def build_task(task_config: Any) -> Task:
    """The task plugin named by `task_config["name"]`, configured by the rest of that node
    (a run's `cfg.task`, a checkpoint's `config.task`, or just `{"name": ...}` for the defaults)."""
    task_class = registry.get("task", task_config["name"])
    return task_class(build_config(task_class.config_class, task_config, "task"))
