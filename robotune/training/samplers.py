"""Training batches from a dataset of episodes: chunk windows for BC, transitions for offline RL.

Windows follow the chunk convention of `robotune.core.policy`: for time t the observation window is
obs[t - obs_horizon + 1 .. t] and the action window is action[t .. t + horizon - 1]. Windows that
run past an episode's edge repeat its first observation or last action, so every step of every
episode is a training sample.

Transitions (s, a, r, s', terminated, truncated), optionally n-step:

For step t of an episode whose last step is L, with k = min(n, L − t + 1) steps looked ahead:

    reward      Σ_{j<k} γ^j r_{t+j}
    discount    γ^k                       (the bootstrap weight; the engine multiplies by 1 − terminated)
    next_obs    obs[t + k] if t + k ≤ L, else the episode's final observation
    terminated  terminated[t + k − 1]     (only an episode's last step can be terminal)
    truncated   the look-ahead reached the end of an episode that was cut, not terminated
    next_action action[t + k] if t + k ≤ L, else action[L] (the dataset's next action, as ReBRAC uses)

Only the per-step results of those formulas are precomputed (a few numbers per step); observations
are gathered from the dataset's arrays at sampling time, so a memory-mapped dataset stays on disk.
Observation windows follow the chunk convention (obs[t − obs_horizon + 1 .. t], the first
observation repeated before an episode's start), flattened to (obs_horizon * obs_dim,).
"""

from __future__ import annotations

import numpy as np
import torch

from robotune.core.dataset import EpisodeDataset


def episode_range(dataset: EpisodeDataset, start: int, stop: int) -> EpisodeDataset:
    """Episodes [start, stop) as a dataset of views into the same arrays (a memory map stays mapped)."""
    if not 0 <= start < stop <= len(dataset):
        raise ValueError(f"episodes [{start}, {stop}) are not inside dataset {dataset.source} of {len(dataset)} episodes")
    first = int(dataset.episode_starts[start])
    last = int(dataset.episode_ends[stop - 1])
    rows = slice(first, last)
    return EpisodeDataset(
        obs=dataset.obs[rows],
        action=dataset.action[rows],
        episode_ends=dataset.episode_ends[start:stop] - first,
        reward=dataset.reward[rows] if dataset.has_rewards else None,
        terminated=dataset.terminated[rows],
        truncated=dataset.truncated[rows],
        final_obs=dataset.final_obs[start:stop] if dataset.has_final_obs else None,
        source=f"{dataset.source} episodes {start}..{stop - 1}",
        metadata=dataset.metadata,
    )


class WindowSampler:
    """Random (obs window, action chunk) batches as torch tensors, via precomputed index tables.

    Gathers with NumPy so memory-mapped, read-only arrays are read only at the sampled rows.
    """

    def __init__(self, dataset: EpisodeDataset, obs_horizon: int, horizon: int) -> None:
        ends = dataset.episode_ends
        starts = dataset.episode_starts
        episode_of_step = np.repeat(np.arange(len(ends)), ends - starts)
        t = np.arange(dataset.num_steps)
        first, last = starts[episode_of_step], ends[episode_of_step] - 1
        # (N, obs_horizon) and (N, horizon) row indices into the flat arrays
        self.obs_index = np.clip(t[:, None] + np.arange(-obs_horizon + 1, 1)[None, :], first[:, None], None)
        self.action_index = np.clip(t[:, None] + np.arange(horizon)[None, :], None, last[:, None])
        self.obs = dataset.obs
        self.action = dataset.action

    def __len__(self) -> int:
        return len(self.obs_index)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """{"obs": (B, obs_horizon, obs_dim), "action": (B, horizon, action_dim)}, raw units."""
        rows = torch.randint(len(self), (batch_size,), generator=generator).numpy()
        return {
            "obs": torch.from_numpy(np.asarray(self.obs[self.obs_index[rows]])),
            "action": torch.from_numpy(np.asarray(self.action[self.action_index[rows]])),
        }


class TransitionSampler:
    def __init__(self, dataset: EpisodeDataset, gamma: float, n_step: int = 1, obs_horizon: int = 1) -> None:
        if n_step < 1 or obs_horizon < 1:
            raise ValueError(f"n_step and obs_horizon must be >= 1, got {n_step} and {obs_horizon}")
        if not dataset.has_rewards:
            raise ValueError(f"dataset {dataset.source} has no rewards, so it cannot train a critic (offline RL needs them)")
        self.dataset, self.obs_horizon = dataset, obs_horizon
        ends = np.asarray(dataset.episode_ends, np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        self.episode = np.repeat(np.arange(len(ends)), ends - starts)
        self.first, self.last = starts[self.episode], ends[self.episode] - 1
        last = self.last
        t = np.arange(dataset.num_steps)
        steps = np.minimum(n_step, last - t + 1)
        reward = np.asarray(dataset.reward, np.float64)
        self.reward = np.zeros(len(t), np.float64)
        for j in range(n_step):  # n is small; each pass is one vectorised gather
            inside = j < steps
            self.reward[inside] += gamma**j * reward[t[inside] + j]
        self.discount = (gamma**steps).astype(np.float32)
        self.reward = self.reward.astype(np.float32)
        end_step = t + steps - 1
        self.terminated = np.asarray(dataset.terminated, bool)[end_step]
        self.truncated = (end_step == last) & ~self.terminated
        self.next_index = np.where(t + steps <= last, t + steps, -1)  # -1: the episode's final observation
        self.next_action_index = np.where(self.next_index >= 0, self.next_index, last)

    def __len__(self) -> int:
        return len(self.reward)

    def _windows(self, index: np.ndarray) -> np.ndarray:
        """Observation windows ending at steps `index` -> (B, obs_horizon * obs_dim)."""
        offsets = np.arange(-self.obs_horizon + 1, 1)
        rows = np.maximum(index[:, None] + offsets[None, :], self.first[index][:, None])
        return np.asarray(self.dataset.obs)[rows.ravel()].reshape(len(index), -1)

    def sample(self, batch_size: int, generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
        """A uniform batch of raw transitions as float32 tensors on `device` (see the module docstring)."""
        index = torch.randint(len(self), (batch_size,), generator=generator).numpy()
        index.sort()  # ascending reads suit a memory map
        return {k: torch.from_numpy(v).to(device) for k, v in self.gather(index).items()}

    def gather(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The transitions at steps `index` (B,) as contiguous float32 arrays with leading dimension B.

        Offline engines gather every transition once (`index = arange(len(self))`) and then sample
        batches by indexing tensors, which costs far less per step than gathering windows again."""
        out = {
            "obs": self._windows(index),
            "action": np.asarray(self.dataset.action)[index],
            "reward": self.reward[index],
            "next_obs": self._next_windows(index),
            "discount": self.discount[index],
            "terminated": self.terminated[index].astype(np.float32),
            "truncated": self.truncated[index].astype(np.float32),
            "next_action": np.asarray(self.dataset.action)[self.next_action_index[index]],
        }
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}

    def _next_windows(self, index: np.ndarray) -> np.ndarray:
        """The window after the look-ahead: slide the window forward; past the episode, end it with final_obs."""
        inside = self.next_index[index] >= 0
        windows = np.empty((len(index), self.obs_horizon * self.dataset.obs_dim), np.float32)
        if inside.any():
            windows[inside] = self._windows(self.next_index[index[inside]])
        outside = index[~inside]
        if outside.size:
            final = np.asarray(self.dataset.final_obs)[self.episode[outside]]
            if self.obs_horizon == 1:
                windows[~inside] = final
            else:
                last_windows = self._windows(self.last[outside])[:, self.dataset.obs_dim :]
                windows[~inside] = np.concatenate([last_windows, final], axis=1)
        return windows
