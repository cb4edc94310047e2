"""Vectorised environments for RL: Gymnasium's vector API with the final observation kept.

`make_vector_env` builds a `SyncVectorEnv` (all environments in this process) or an
`AsyncVectorEnv` (one subprocess worker each) in Gymnasium's SAME_STEP autoreset mode: when an
episode ends, `step` returns the next episode's first observation and puts the observation that
ended the episode in `info["final_obs"][i]` (and that step's info in `info["final_info"]`), so a
truncated episode can be bootstrapped from its true last state. Environment i is seeded with
seed + i at the first reset.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robotune.core.task import Task

VECTOR_MODES = ("sync", "async")


def make_vector_env(task: Task, num_envs: int, mode: str = "sync") -> gym.vector.VectorEnv:
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if mode not in VECTOR_MODES:
        raise ValueError(f"vector mode must be one of {VECTOR_MODES}, got '{mode}'")
    factories = [task.make_env for _ in range(num_envs)]
    autoreset = gym.vector.AutoresetMode.SAME_STEP
    if mode == "async":
        return gym.vector.AsyncVectorEnv(factories, autoreset_mode=autoreset)
    return gym.vector.SyncVectorEnv(factories, autoreset_mode=autoreset)


def step_outcome(info: dict, done: np.ndarray, key: str, default: float = 0.0) -> np.ndarray:
    """Per-environment value of `info[key]` for this step, read from `final_info` where an episode
    just ended (in SAME_STEP mode the top-level info of a done environment is its reset info).
    Environments that do not report `key` get `default`."""
    values = np.full(len(done), default, dtype=np.float64)
    for source, rows in ((info, ~done), (info.get("final_info", {}), done)):
        if key in source:
            present = source.get(f"_{key}", np.ones(len(done), dtype=bool)) & rows
            values[present] = np.asarray(source[key], dtype=np.float64)[present]
    return values
