"""`task=gymnasium task.env_id=<id>`: any installed Gymnasium environment with Box spaces, as a robotune task.

The spec comes from the environment's spaces: observation entries are named `obs.0 .. obs.N-1`,
action bounds are the action space's, the control rate is the environment's `render_fps` (or
1 / dt for MuJoCo environments) and the episode limit its registered `max_episode_steps`.
Environments without `info["is_success"]` (all of MuJoCo locomotion) evaluate on return alone.

Normalised scores follow D4RL: 100 * (R - random) / (expert - random). Reference returns are
known for Hopper, Walker2d and HalfCheetah (D4RL's published references); for another
environment give `task.random_return` and `task.expert_return`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from robotune.core.registry import register
from robotune.core.spec import TaskSpec
from robotune.core.task import Task, TaskConfig

HEADLESS_GL = ("egl", "osmesa")

# D4RL's reference returns (random, expert), by environment family.
D4RL_REFERENCE_RETURNS = {
    "Hopper": (-20.272305, 3234.3),
    "HalfCheetah": (-280.178953, 12135.0),
    "Walker2d": (1.629008, 4592.3),
}


@dataclass
class GymnasiumTaskConfig(TaskConfig):
    env_id: str = "Hopper-v5"
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    max_episode_steps: int = 0  # 0: the environment's registered limit
    # numeric info keys to aggregate per episode in evaluation: key -> "max", "final" or "mean"
    info_metrics: dict[str, str] = field(default_factory=dict)
    random_return: float | None = None  # reference returns for normalised scores (defaults: D4RL's, where known)
    expert_return: float | None = None


@register("task", "gymnasium")
class GymnasiumTask(Task):
    config_class = GymnasiumTaskConfig
    config: GymnasiumTaskConfig

    def __init__(self, config: GymnasiumTaskConfig | None = None) -> None:
        super().__init__(config or GymnasiumTaskConfig())
        self.info_metrics = dict(self.config.info_metrics)
        try:
            probe = self.make_env()
        except gym.error.Error as exc:
            raise ValueError(f"task.env_id '{self.config.env_id}' cannot be made: {exc}") from exc
        for name, space in (("observation", probe.observation_space), ("action", probe.action_space)):
            if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
                raise ValueError(f"task.env_id '{self.config.env_id}': the {name} space must be a 1-D Box, got {space}")
        low, high = probe.action_space.low, probe.action_space.high
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError(f"task.env_id '{self.config.env_id}': the action space must be bounded, got {low}..{high}")
        dt = getattr(probe.unwrapped, "dt", None)
        rate = float(probe.metadata.get("render_fps") or (1.0 / dt if dt else 1.0))
        self._spec = TaskSpec(
            name=f"gymnasium/{self.config.env_id}",
            obs_names=tuple(f"obs.{i}" for i in range(probe.observation_space.shape[0])),
            action_low=tuple(float(x) for x in low),
            action_high=tuple(float(x) for x in high),
            control_rate_hz=rate,
            max_episode_steps=int(probe.spec.max_episode_steps or 0) if probe.spec else 0,
        )
        probe.close()
        family = self.config.env_id.split("-")[0]
        reference = D4RL_REFERENCE_RETURNS.get(family, (None, None))
        self._random = self.config.random_return if self.config.random_return is not None else reference[0]
        self._expert = self.config.expert_return if self.config.expert_return is not None else reference[1]

    @property
    def spec(self) -> TaskSpec:
        return self._spec

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        kwargs = dict(self.config.env_kwargs)
        if render_mode is not None:
            # Gymnasium's MuJoCo renderer uses the GL backend mujoco chose at import (MUJOCO_GL); without
            # a headless one and without a display, GLFW aborts the process instead of raising.
            if os.environ.get("MUJOCO_GL", "").lower() not in HEADLESS_GL and not os.environ.get("DISPLAY"):
                raise ValueError(
                    f"task.env_id '{self.config.env_id}' cannot render render_mode={render_mode!r} here: no display; "
                    f"start with MUJOCO_GL=egl (or osmesa) to render headless"
                )
            kwargs["render_mode"] = render_mode
        if self.config.max_episode_steps:
            kwargs["max_episode_steps"] = self.config.max_episode_steps
        return gym.make(self.config.env_id, **kwargs)

    def normalized_score(self, episode_return: float) -> float | None:
        if self._random is None or self._expert is None:
            return None
        return 100.0 * (episode_return - self._random) / (self._expert - self._random)
