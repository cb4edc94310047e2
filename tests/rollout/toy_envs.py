"""Tiny deterministic environments and tasks for rollout and RL tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robotune.core.spec import TaskSpec
from robotune.core.task import Task, TaskConfig


class CounterEnv(gym.Env):
    """obs = [step, episode]; reward = 1 per step; the episode ends after `length` steps,
    terminated if `terminate` else truncated. Records every action it receives."""

    def __init__(self, length: int, terminate: bool) -> None:
        self.length, self.terminate = length, terminate
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)
        self.episode, self.t, self.actions = -1, 0, []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return np.array([0.0, self.episode], np.float32), {}

    def step(self, action):
        self.actions.append(float(action[0]))
        self.t += 1
        done = self.t >= self.length
        obs = np.array([self.t, self.episode], np.float32)
        return obs, 1.0, done and self.terminate, done and not self.terminate, {}


class TargetEnv(gym.Env):
    """A one-step-at-a-time bandit: obs is a target in [-1, 1]^2, reward −|a − target|², 5 steps an episode.
    A policy that outputs the observation is optimal, so an RL engine must raise the return quickly."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.target, self.t = np.zeros(2, np.float32), 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.target = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.target.copy(), {}

    def step(self, action):
        reward = -float(np.square(np.asarray(action) - self.target).sum())
        self.t += 1
        self.target = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.target.copy(), reward, False, self.t >= 5, {"is_success": reward > -0.05}


class TargetTask(Task):
    config_class = TaskConfig

    def __init__(self) -> None:
        super().__init__(TaskConfig(name="target"))

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec("target", ("x", "y"), (-1.0, -1.0), (1.0, 1.0), control_rate_hz=10.0, max_episode_steps=5)

    def make_env(self) -> gym.Env:
        return TargetEnv()
