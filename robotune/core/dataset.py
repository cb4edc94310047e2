"""Episodes of (observation, action, reward, terminated, truncated) and windowed chunk sampling.

On disk a dataset is one safetensors file: the episodes' arrays concatenated along time plus
`episode_ends`, with JSON metadata in the file header. No pickle.

Windows follow the chunk convention of `robotune.core.policy`: for time t the observation window is
obs[t - obs_horizon + 1 .. t] and the action window is action[t .. t + horizon - 1]. Windows that
run past an episode's edge repeat its first observation or last action, so every step of every
episode is a training sample.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file


class DatasetError(ValueError):
    """A dataset is unusable; the message names the file, the episode and the field."""


@dataclass
class Episode:
    obs: np.ndarray  # (T, obs_dim) float32
    action: np.ndarray  # (T, action_dim) float32, the action taken after observing obs[t]
    reward: np.ndarray  # (T,) float32
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool

    def __len__(self) -> int:
        return len(self.action)


FIELDS = ("obs", "action", "reward", "terminated", "truncated")


class EpisodeDataset:
    """An in-memory list of episodes, validated on construction."""

    def __init__(self, episodes: list[Episode], source: str = "<memory>", min_length: int = 1) -> None:
        self.episodes = episodes
        self.source = source
        self._validate(min_length)
        self.obs = np.concatenate([e.obs for e in episodes]).astype(np.float32)
        self.action = np.concatenate([e.action for e in episodes]).astype(np.float32)
        self.episode_ends = np.cumsum([len(e) for e in episodes])

    # ---- validation -------------------------------------------------------------------------
    def _validate(self, min_length: int) -> None:
        where = f"dataset {self.source}"
        if not self.episodes:
            raise DatasetError(f"{where}: contains no episodes")
        obs_dim = self.episodes[0].obs.shape[-1] if self.episodes[0].obs.ndim == 2 else None
        action_dim = self.episodes[0].action.shape[-1] if self.episodes[0].action.ndim == 2 else None
        for i, ep in enumerate(self.episodes):
            at = f"{where}, episode {i}"
            if ep.obs.ndim != 2 or ep.obs.shape[1] != obs_dim:
                raise DatasetError(f"{at}: 'obs' must have shape (T, {obs_dim}), got {ep.obs.shape}")
            if ep.action.ndim != 2 or ep.action.shape[1] != action_dim:
                raise DatasetError(f"{at}: 'action' must have shape (T, {action_dim}), got {ep.action.shape}")
            length = len(ep.action)
            if length == 0:
                raise DatasetError(f"{at}: is empty")
            if length < min_length:
                raise DatasetError(f"{at}: has {length} steps, fewer than the {min_length} required")
            for name in FIELDS:
                value = getattr(ep, name)
                if len(value) != length:
                    raise DatasetError(f"{at}: '{name}' has {len(value)} steps but 'action' has {length}")
                if value.dtype.kind == "f" and not np.isfinite(value).all():
                    bad = int(np.argwhere(~np.isfinite(value))[0][0])
                    raise DatasetError(f"{at}: '{name}' has a NaN or infinite value at step {bad}")

    # ---- statistics and sampling ------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def action_dim(self) -> int:
        return self.action.shape[1]

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def num_steps(self) -> int:
        return int(self.episode_ends[-1])

    def stats(self) -> dict[str, np.ndarray]:
        """Per-dimension min, max, mean and std of observations and actions."""
        out = {}
        for name, data in (("obs", self.obs), ("action", self.action)):
            out.update(
                {
                    f"{name}_min": data.min(0),
                    f"{name}_max": data.max(0),
                    f"{name}_mean": data.mean(0),
                    f"{name}_std": data.std(0),
                }
            )
        return out

    def window_sampler(self, obs_horizon: int, horizon: int) -> WindowSampler:
        return WindowSampler(self, obs_horizon, horizon)

    # ---- files --------------------------------------------------------------------------------
    def save(self, path: str | Path, metadata: dict | None = None) -> None:
        """Write atomically: a reader never sees half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: np.concatenate([getattr(e, name) for e in self.episodes]) for name in FIELDS}
        arrays["terminated"] = arrays["terminated"].astype(np.uint8)
        arrays["truncated"] = arrays["truncated"].astype(np.uint8)
        arrays["episode_ends"] = self.episode_ends.astype(np.int64)
        tmp = path.with_name(path.name + ".tmp")
        save_file(arrays, str(tmp), metadata={"robotune": json.dumps(metadata or {})})
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, min_length: int = 1) -> EpisodeDataset:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"dataset file {path} does not exist")
        try:
            arrays = load_file(str(path))
        except Exception as exc:
            raise DatasetError(f"dataset file {path} is not a readable safetensors file: {exc}") from exc
        missing = [k for k in (*FIELDS, "episode_ends") if k not in arrays]
        if missing:
            raise DatasetError(f"dataset file {path} lacks the field(s) {missing}")
        ends = arrays["episode_ends"]
        if ends.ndim != 1 or (np.diff(np.concatenate([[0], ends])) < 0).any() or ends[-1] != len(arrays["action"]):
            raise DatasetError(f"dataset file {path}: 'episode_ends' must increase and end at the number of steps")
        starts = np.concatenate([[0], ends[:-1]])
        episodes = [
            Episode(
                obs=arrays["obs"][s:e],
                action=arrays["action"][s:e],
                reward=arrays["reward"][s:e],
                terminated=arrays["terminated"][s:e].astype(bool),
                truncated=arrays["truncated"][s:e].astype(bool),
            )
            for s, e in zip(starts, ends)
        ]
        return cls(episodes, source=str(path), min_length=min_length)


class WindowSampler:
    """Random (obs window, action chunk) batches as torch tensors, via precomputed index tables."""

    def __init__(self, dataset: EpisodeDataset, obs_horizon: int, horizon: int) -> None:
        ends = dataset.episode_ends
        starts = np.concatenate([[0], ends[:-1]])
        episode_of_step = np.repeat(np.arange(len(ends)), ends - starts)
        t = np.arange(dataset.num_steps)
        first, last = starts[episode_of_step], ends[episode_of_step] - 1
        obs_index = np.clip(t[:, None] + np.arange(-obs_horizon + 1, 1)[None, :], first[:, None], None)
        action_index = np.clip(t[:, None] + np.arange(horizon)[None, :], None, last[:, None])
        self.obs_index = torch.from_numpy(obs_index)
        self.action_index = torch.from_numpy(action_index)
        self.obs = torch.from_numpy(dataset.obs)
        self.action = torch.from_numpy(dataset.action)

    def __len__(self) -> int:
        return len(self.obs_index)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """{"obs": (B, obs_horizon, obs_dim), "action": (B, horizon, action_dim)}, raw units."""
        rows = torch.randint(len(self), (batch_size,), generator=generator)
        return {"obs": self.obs[self.obs_index[rows]], "action": self.action[self.action_index[rows]]}
