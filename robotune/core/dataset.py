"""The dataset contract: episodes stored as flat arrays plus an episode index.

A dataset of N steps in E episodes is held as flat arrays, so millions of transitions never become
Python objects, and any of them may be a read-only `np.memmap`:

    obs          (N, obs_dim)    float32  observation at step t
    action       (N, action_dim) float32  action taken after observing obs[t]
    reward       (N,)            float32  reward received for action[t]
    terminated   (N,)            bool     the environment reached a terminal state after action[t]
    truncated    (N,)            bool     the episode was cut (time limit, end of recording) after action[t]
    episode_ends (E,)            int64    cumulative: episode i is steps [episode_ends[i-1], episode_ends[i])
    final_obs    (E, obs_dim)    float32  the observation after each episode's last action

Within an episode next_obs[t] is obs[t + 1], and at its last step final_obs[i], so a truncated
episode can be bootstrapped. `terminated` and `truncated` may be set only at an episode's last step.
`Episode` views (`dataset.episode(i)`) slice these arrays without copying;
`robotune.data.episodes.concatenate_episodes` builds a dataset from separate episodes.

Optional fields (behaviour-cloning data often has no rewards and no final observation):
- reward absent: zeros, and `has_rewards` is False; the flag travels with the dataset on disk.
- terminated absent: False everywhere.
- truncated absent: True at an episode's last step unless that step is terminated, False elsewhere.
  An episode whose end is unexplained is treated as cut, never as terminal: a value estimate then
  bootstraps instead of silently assuming a zero future.
- final_obs absent: the episode's last observation repeated, and `has_final_obs` is False, so a
  transition sampler knows the last step of each episode has no true next observation.

Files are read and written by `robotune.data` (`load_dataset`, `save_dataset`): a single
`.safetensors` file for small datasets, robotune's chunked store, and the formats of other
libraries. Core holds only the arrays, so it never imports zarr, h5py or pyarrow.

Samplers that draw training batches from these arrays (chunk windows for BC, transitions for
offline RL) are in `robotune.training.samplers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """A dataset is unusable; the message names the file, the episode and the field."""


@dataclass
class Episode:
    """One episode; the optional fields take the defaults described in the module docstring."""

    obs: np.ndarray  # (T, obs_dim) float32
    action: np.ndarray  # (T, action_dim) float32, the action taken after observing obs[t]
    reward: np.ndarray | None = None  # (T,) float32
    terminated: np.ndarray | None = None  # (T,) bool
    truncated: np.ndarray | None = None  # (T,) bool
    final_obs: np.ndarray | None = None  # (obs_dim,) float32, the observation after action[T-1]

    def __len__(self) -> int:
        return len(self.action)


STEP_FIELDS = ("obs", "action", "reward", "terminated", "truncated")
# Fields stored on disk; `final_obs` only when the dataset has it.
ARRAY_FIELDS = (*STEP_FIELDS, "episode_ends", "final_obs")


class EpisodeDataset:
    """Flat, validated arrays of E episodes (see the module docstring for fields and shapes)."""

    def __init__(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        episode_ends: np.ndarray,
        reward: np.ndarray | None = None,
        terminated: np.ndarray | None = None,
        truncated: np.ndarray | None = None,
        final_obs: np.ndarray | None = None,
        source: str = "<memory>",
        min_length: int = 1,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Validate flat arrays (shapes in the module docstring), fill absent fields with their
        documented defaults, and adopt them without copying those of the right dtype, so that a file
        reader's memory-mapped arrays stay mapped."""
        self.source = source
        self.metadata = dict(metadata or {})
        where = f"dataset {source}"
        obs, action = np.asanyarray(obs), np.asanyarray(action)
        ends = np.asanyarray(episode_ends)
        if obs.ndim != 2:
            raise DatasetError(f"{where}: 'obs' must have shape (N, obs_dim), got {obs.shape}")
        if action.ndim != 2:
            raise DatasetError(f"{where}: 'action' must have shape (N, action_dim), got {action.shape}")
        num_steps = len(action)
        if len(obs) != num_steps:
            raise DatasetError(f"{where}: 'obs' has {len(obs)} steps but 'action' has {num_steps}")
        if ends.ndim != 1 or ends.dtype.kind not in "iu":
            raise DatasetError(f"{where}: 'episode_ends' must be a 1-D integer array, got {ends.dtype} {ends.shape}")
        if len(ends) == 0:
            raise DatasetError(f"{where}: contains no episodes")
        lengths = np.diff(ends, prepend=0)
        if (lengths < 0).any():
            i = int(np.argmax(lengths < 0))
            raise DatasetError(f"{where}: 'episode_ends' decreases at episode {i} ({ends[i - 1]} -> {ends[i]})")
        if ends[-1] != num_steps:
            raise DatasetError(f"{where}: 'episode_ends' ends at {ends[-1]} but there are {num_steps} steps")
        if (lengths == 0).any():
            raise DatasetError(f"{where}, episode {int(np.argmax(lengths == 0))}: is empty")
        if (lengths < min_length).any():
            i = int(np.argmax(lengths < min_length))
            raise DatasetError(f"{where}, episode {i}: has {lengths[i]} steps, fewer than the {min_length} required")
        self.episode_ends = ends.astype(np.int64, copy=False)
        self.episode_starts = np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)  # (E,)
        last_steps = self.episode_ends - 1
        for name, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
            if value is not None and np.shape(value) != (num_steps,):
                raise DatasetError(f"{where}: '{name}' must have shape ({num_steps},), got {np.shape(value)}")
        if final_obs is not None and np.shape(final_obs) != (len(ends), obs.shape[1]):
            raise DatasetError(f"{where}: 'final_obs' must have shape ({len(ends)}, {obs.shape[1]}), "
                               f"got {np.shape(final_obs)}")

        self.obs = _as(obs, np.float32)
        self.action = _as(action, np.float32)
        self.has_rewards = reward is not None
        self.reward = _as(reward, np.float32) if reward is not None else np.zeros(num_steps, np.float32)
        self.terminated = _as(terminated, np.bool_) if terminated is not None else np.zeros(num_steps, bool)
        if truncated is not None:
            self.truncated = _as(truncated, np.bool_)
        else:
            self.truncated = np.zeros(num_steps, bool)
            self.truncated[last_steps] = ~self.terminated[last_steps]
        self.has_final_obs = final_obs is not None
        self.final_obs = _as(final_obs, np.float32) if final_obs is not None else self.obs[last_steps]
        for name in ("obs", "action", "reward", "final_obs"):
            self._check_finite(name)
        inside = self.terminated | self.truncated
        inside[last_steps] = False
        if inside.any():
            row = int(np.argmax(inside))
            episode = int(np.searchsorted(self.episode_ends, row, side="right"))
            raise DatasetError(f"{where}, episode {episode}: 'terminated' or 'truncated' is set at step "
                               f"{row - self.episode_starts[episode]}, before the episode's last step; check 'episode_ends'")

    def _check_finite(self, name: str) -> None:
        value = getattr(self, name)
        if np.isfinite(value).all():
            return
        bad_row = int(np.argmax(~np.isfinite(value.reshape(len(value), -1)).all(axis=1)))
        where = f"dataset {self.source}"
        if name == "final_obs":
            raise DatasetError(f"{where}, episode {bad_row}: 'final_obs' has a NaN or infinite value")
        episode = int(np.searchsorted(self.episode_ends, bad_row, side="right"))
        step = bad_row - int(self.episode_starts[episode])
        raise DatasetError(f"{where}, episode {episode}: '{name}' has a NaN or infinite value at step {step}")

    # ---- shape and episode views --------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def action_dim(self) -> int:
        return self.action.shape[1]

    def __len__(self) -> int:
        """The number of episodes."""
        return len(self.episode_ends)

    @property
    def num_steps(self) -> int:
        return int(self.episode_ends[-1])

    def episode(self, i: int) -> Episode:
        """Episode i as views into the flat arrays; fields the dataset was not given are None."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"episode {i} out of range for a dataset of {len(self)} episodes")
        i %= len(self)
        start, end = int(self.episode_starts[i]), int(self.episode_ends[i])
        return Episode(
            obs=self.obs[start:end],
            action=self.action[start:end],
            reward=self.reward[start:end] if self.has_rewards else None,
            terminated=self.terminated[start:end],
            truncated=self.truncated[start:end],
            final_obs=self.final_obs[i] if self.has_final_obs else None,
        )

    @property
    def episodes(self) -> list[Episode]:
        """All episodes, each a set of views into the flat arrays (no data is copied)."""
        return [self.episode(i) for i in range(len(self))]

    # ---- statistics and files ------------------------------------------------------------------
    def stats(self) -> dict[str, np.ndarray]:
        """Per-dimension min, max, mean and std of observations and actions: {"obs_min": (obs_dim,), ...}."""
        return {
            f"{name}_{statistic}": getattr(getattr(self, name), statistic)(0)
            for name in ("obs", "action")
            for statistic in ("min", "max", "mean", "std")
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to store, named as in ARRAY_FIELDS; `final_obs` only when it was given."""
        return {name: getattr(self, name) for name in ARRAY_FIELDS if name != "final_obs" or self.has_final_obs}


def _as(value: np.ndarray, dtype: type) -> np.ndarray:
    """`value` as `dtype`, without a copy (a memory map stays mapped) when it already is one."""
    value = np.asanyarray(value)
    return value if value.dtype == dtype else value.astype(dtype)
