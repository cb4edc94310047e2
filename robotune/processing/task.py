"""A task seen through observation processors: every environment it makes emits the policy's observation.

Training (BC's evaluations, PPO and SAC rollouts) and `robotune eval` act through this wrapper, so
every algorithm, the vector environments and the evaluation harness see the processed observation
without knowing about processors. Demonstrations are recorded from the task itself (a scripted
expert reads the task's own observation) and processed afterwards, like any dataset.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robotune.core.spec import TaskSpec
from robotune.core.task import Task
from robotune.processing.pipeline import ObservationProcessors


class ProcessedObservation(gym.ObservationWrapper):
    """Applies the processors to every observation, the final one of an episode included."""

    def __init__(self, env: gym.Env, processors: ObservationProcessors) -> None:
        super().__init__(env)
        self.processors = processors
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(len(processors.obs_names),), dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return self.processors.apply(np.asarray(observation, np.float32))


class ProcessedTask(Task):
    """`task` with the policy's spec and environments wrapped in `ProcessedObservation`.

    It has no expert: an expert acts on the task's own observation (record with the task itself)."""

    def __init__(self, task: Task, processors: ObservationProcessors) -> None:
        super().__init__(task.config)
        processors.check_task(task.spec)
        self.task = task
        self.processors = processors
        self.info_metrics = task.info_metrics
        self._spec = processors.policy_spec(task.spec)

    @property
    def spec(self) -> TaskSpec:
        return self._spec

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        env = self.task.make_env() if render_mode is None else self.task.make_env(render_mode=render_mode)
        return ProcessedObservation(env, self.processors)

    def normalized_score(self, episode_return: float) -> float | None:
        return self.task.normalized_score(episode_return)


def processed_task(task: Task, processors: ObservationProcessors) -> Task:
    """`task` as the policy sees it: itself when the processors change nothing."""
    processors.check_task(task.spec)
    return task if processors.is_identity else ProcessedTask(task, processors)
