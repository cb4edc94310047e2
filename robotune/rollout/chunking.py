"""Turn a chunk policy into a per-step controller for N environments at once.

The controller keeps each environment's observation history, asks the policy for a chunk of
`horizon` actions, executes `act_steps` of them open loop and then replans. With
`ensemble_decay` set it instead replans every step and averages every chunk that predicted the
current step, weighting older predictions by exp(-decay * age_difference) as in ACT's temporal
ensembling (older chunks weigh more, which smooths chunk boundaries).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from robotune.core.policy import Policy


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
        d_obs, d_act = policy.obs_dim, policy.action_dim
        self.history = np.zeros((num_envs, self.obs_horizon, d_obs), dtype=np.float32)
        # Pending actions for the next `horizon` steps (weighted sums when ensembling).
        self.pending = np.zeros((num_envs, self.horizon, d_act), dtype=np.float64)
        self.pending_weight = np.zeros((num_envs, self.horizon), dtype=np.float64)
        self.steps_left = np.zeros(num_envs, dtype=np.int64)
        self.fresh = np.ones(num_envs, dtype=bool)

    def reset(self, env_ids: np.ndarray | list[int] | None = None) -> None:
        """Start new episodes for `env_ids` (all by default): history and queued actions are dropped."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids)
        self.fresh[ids] = True
        self.steps_left[ids] = 0
        self.pending[ids] = 0.0
        self.pending_weight[ids] = 0.0
        self.policy.reset()

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
            if self.ensemble_decay is None:
                self.pending[replan] = chunk
                self.pending_weight[replan] = 1.0
            else:
                # Rescale the existing sums instead of shrinking the new chunk's weight: same ratios, no underflow.
                boost = math.exp(self.ensemble_decay)
                self.pending[replan] = self.pending[replan] * boost + chunk
                self.pending_weight[replan] = self.pending_weight[replan] * boost + 1.0
            self.steps_left[replan] = self.act_steps

        action = self.pending[:, 0] / self.pending_weight[:, :1]
        self.pending = np.roll(self.pending, -1, axis=1)
        self.pending_weight = np.roll(self.pending_weight, -1, axis=1)
        self.pending[:, -1] = 0.0
        self.pending_weight[:, -1] = 0.0
        self.steps_left -= 1
        return action.astype(np.float32)
