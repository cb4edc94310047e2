"""The chunk schedule: which action of which predicted chunk runs at each control step.

One implementation, used by evaluation (`ChunkController`, N environments stepped together) and by
the deploy runner (`robotune.deploy.planner.ChunkPlanner`, one robot, chunks planned ahead).

`ChunkSchedule` keeps, per environment, the pending actions for the next `horizon` steps; entry 0
is the current step. A chunk predicted from the observation of step t holds the actions for steps
t, t+1, ...; merged `age` steps later, its first `age` entries are already past and are dropped.
Merging either replaces the pending actions (open loop, optionally blending the first
`blend_steps` of the new chunk with the old chunk's predictions for the same steps) or, with
`ensemble_decay`, averages every chunk that predicted a step, weighting older predictions by
exp(-decay * age difference) as in ACT's temporal ensembling.

`ChunkController` turns a chunk policy into a per-step controller: it keeps each environment's
observation history, executes `act_steps` of each chunk open loop and then replans (or, when
ensembling, replans every step). Evaluation makes one per wave of episodes that start together;
RL rollouts, whose environments reset one at a time, keep their own per-environment schedule
(`robotune.rollout.chunk_rollout`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from robotune.core.policy import Policy


class ChunkSchedule:
    """Pending actions (num_envs, horizon, action_dim) indexed from the current step."""

    def __init__(self, num_envs: int, horizon: int, action_dim: int, ensemble_decay: float | None = None,
                 blend_steps: int = 0) -> None:
        if blend_steps < 0:
            raise ValueError(f"blend_steps must be >= 0, got {blend_steps}")
        self.horizon = horizon
        self.ensemble_decay = ensemble_decay
        self.blend_steps = blend_steps
        self.pending = np.zeros((num_envs, horizon, action_dim), dtype=np.float64)
        self.weight = np.zeros((num_envs, horizon), dtype=np.float64)  # 0: no action for that step

    def clear(self, env_ids: np.ndarray | None = None) -> None:
        ids = slice(None) if env_ids is None else env_ids
        self.pending[ids] = 0.0
        self.weight[ids] = 0.0

    def merge(self, chunks: np.ndarray, env_ids: np.ndarray | None = None, age: int = 0, skip: int = 0) -> int:
        """Merge chunks (n, horizon, action_dim) predicted `age` steps ago; entries before `skip` are
        never used (the deploy planner's inference lead). Returns how many usable entries were already past."""
        ids = np.arange(self.pending.shape[0]) if env_ids is None else np.asarray(env_ids)
        start = max(age, skip)
        entries = np.asarray(chunks, dtype=np.float64)[:, start:]
        first, count = start - age, entries.shape[1]
        window = slice(first, first + count)
        if self.ensemble_decay is not None:
            # Rescale the existing sums instead of shrinking the new chunk's weight: same ratios, no underflow.
            boost = math.exp(self.ensemble_decay)
            self.pending[ids] *= boost
            self.weight[ids] *= boost
            self.pending[ids, window] += entries
            self.weight[ids, window] += 1.0
        else:
            old_weight = self.weight[ids, window]
            old = self.pending[ids, window] / np.maximum(old_weight, 1e-300)[..., None]
            position = np.arange(start, start + count) - skip  # index within the chunk's used part
            w = np.where(position < self.blend_steps, (position + 1) / (self.blend_steps + 1), 1.0)
            w = np.where(old_weight > 0, w[None, :], 1.0)[..., None]
            self.pending[ids, window] = (1.0 - w) * old + w * entries
            self.weight[ids, window] = 1.0
        return max(0, age - skip)

    def has_action(self) -> np.ndarray:
        """(num_envs,) True where the current step has an action."""
        return self.weight[:, 0] > 0

    def current(self) -> np.ndarray:
        """The current step's actions (num_envs, action_dim); NaN where none is pending."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.pending[:, 0] / self.weight[:, :1]

    def advance(self, steps: int = 1) -> None:
        """Move on `steps` control steps; actions for the steps passed are dropped."""
        steps = min(steps, self.horizon)
        if steps <= 0:
            return
        self.pending = np.roll(self.pending, -steps, axis=1)
        self.weight = np.roll(self.weight, -steps, axis=1)
        self.pending[:, -steps:] = 0.0
        self.weight[:, -steps:] = 0.0


class ChunkController:
    """obs (N, obs_dim) in, action (N, action_dim) out; one call per control step."""

    def __init__(
        self,
        policy: Policy,
        num_envs: int = 1,
        deterministic: bool = True,
        ensemble_decay: float | None = None,
        seed: int = 0,
    ) -> None:
        self.policy = policy
        self.num_envs = num_envs
        self.deterministic = deterministic
        self.ensemble_decay = ensemble_decay
        self.generator = torch.Generator().manual_seed(seed)
        cfg = policy.config
        self.obs_horizon, self.horizon = cfg.obs_horizon, cfg.horizon
        self.act_steps = 1 if ensemble_decay is not None else cfg.act_steps
        self.history = np.zeros((num_envs, self.obs_horizon, policy.obs_dim), dtype=np.float32)
        self.schedule = ChunkSchedule(num_envs, self.horizon, policy.action_dim, ensemble_decay)
        self.steps_left = np.zeros(num_envs, dtype=np.int64)
        self.fresh = np.ones(num_envs, dtype=bool)
        policy.reset()  # a controller starts every environment on a new episode

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32).reshape(self.num_envs, -1)
        # A fresh episode's history is its first observation repeated.
        self.history[self.fresh] = obs[self.fresh, None, :]
        self.history[~self.fresh] = np.concatenate([self.history[~self.fresh, 1:], obs[~self.fresh, None]], axis=1)
        self.fresh[:] = False

        replan = np.flatnonzero(self.steps_left == 0)
        if replan.size:
            chunk = self.policy.predict_chunk(
                torch.from_numpy(self.history[replan]), deterministic=self.deterministic, generator=self.generator
            ).numpy()
            self.schedule.merge(chunk, replan)
            self.steps_left[replan] = self.act_steps

        action = self.schedule.current()
        self.schedule.advance()
        self.steps_left -= 1
        return action.astype(np.float32)
