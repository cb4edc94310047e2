"""Chunk-level (semi-MDP) rollouts over a vector env, for RL with action-chunk policies.

A decision is one chunk: the policy sees the environment's observation window (To, Do) and
returns `act_steps` actions, which run open loop. The decision's reward is the discounted sum
inside the chunk, R = Σ_{j<k} γ^j r_j, and it discounts what follows by γ^k, with k the steps it
actually ran (fewer when the episode ended inside the chunk). So PPO and SAC work on chunks with
the same formulas as on single steps.

Each environment replans on its own schedule: after an episode ends mid-chunk, that environment's
next episode starts with a fresh decision while the others finish their chunks. The policy is
called once per environment step for the environments that need a decision, batched.

Every decision records its next observation window (after the chunk; after an episode end, the
window ending in the episode's final observation), so a truncated episode or a chunk cut at the
end of a rollout is bootstrapped from the critic's value of the true next state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robotune.rollout.vector import step_outcome

# (obs windows (M, To, Do) raw float32) -> (raw actions (M, act_steps, Da), per-decision tensors {name: (M, ...)})
DecideFn = Callable[[np.ndarray], tuple[np.ndarray, dict[str, torch.Tensor]]]
# (modules by name, obs windows (M, To, Do) raw float32, generator) -> what a DecideFn returns
DecisionRule = Callable[[dict[str, nn.Module], np.ndarray, torch.Generator], tuple[np.ndarray, dict[str, torch.Tensor]]]


@dataclass
class Decider:
    """A DecideFn spelled out as a module-level rule over named modules, so that rollout workers in
    other processes (`robotune/rollout/ray_rollout.py`) can rebuild the modules and run the same rule."""

    rule: DecisionRule
    modules: dict[str, nn.Module]
    generator: torch.Generator

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        return self.rule(self.modules, obs, self.generator)


@dataclass
class EpisodeStats:
    """Episodes that ended during a collection: return, length and success (NaN where the task has no success signal)."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        if not self.returns:
            return {}
        out = {"episode_return": float(np.mean(self.returns)), "episode_length": float(np.mean(self.lengths))}
        known = [s for s in self.successes if not np.isnan(s)]
        if known:
            out["success_rate"] = float(np.mean(known))
        return out


@dataclass
class DecisionBatch:
    """Decisions in the order they ended. D decisions; `payload` holds the DecideFn's tensors.

    obs, next_obs (D, To, Do) raw; reward, discount (D,) float32; terminated, episode_end (D,) bool;
    env (D,) int64; `grid` (Dmax, N) int64 indexes each environment's decisions in time order, -1 where padded.
    """

    obs: np.ndarray
    next_obs: np.ndarray
    reward: np.ndarray
    discount: np.ndarray
    terminated: np.ndarray
    episode_end: np.ndarray
    env: np.ndarray
    grid: np.ndarray
    payload: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.reward)


class ChunkRollout:
    """Steps `envs` with chunk decisions and collects `DecisionBatch`es; episodes continue across collections."""

    def __init__(self, envs: gym.vector.VectorEnv, obs_horizon: int, act_steps: int, gamma: float, seed: int) -> None:
        self.envs, self.obs_horizon, self.act_steps, self.gamma = envs, obs_horizon, act_steps, gamma
        self.num_envs = envs.num_envs
        self.restart(seed)

    def restart(self, seed: int) -> None:
        """Start new episodes in every environment (environment i seeded with seed + i).

        A resumed run calls this: environments' mid-episode state is not part of a checkpoint."""
        obs, _ = self.envs.reset(seed=seed)
        self.history = np.repeat(np.asarray(obs, np.float32)[:, None], self.obs_horizon, axis=1)  # (N, To, Do)
        self.episode_return = np.zeros(self.num_envs)
        self.episode_length = np.zeros(self.num_envs, dtype=np.int64)
        self.episode_success = np.full(self.num_envs, np.nan)

    def collect(self, steps_per_env: int, decide: DecideFn) -> tuple[DecisionBatch, EpisodeStats]:
        """Run `steps_per_env` environment steps in every environment; chunks still open at the end are
        cut there (not an episode end: they bootstrap from the window they reached)."""
        n, gamma = self.num_envs, self.gamma
        stats = EpisodeStats()
        obs_rec: list[np.ndarray] = []
        env_rec: list[int] = []
        closed: list[tuple] = []  # per decision id: (next window, reward, discount, terminated, episode_end)
        payload_parts: list[dict[str, torch.Tensor]] = []
        env_order: list[list[int]] = [[] for _ in range(n)]
        open_id = np.full(n, -1)
        pending = np.zeros((n, self.act_steps, self.envs.single_action_space.shape[0]), np.float32)
        steps_left = np.zeros(n, dtype=np.int64)
        reward_sum, discount = np.zeros(n), np.ones(n)

        def close(i: int, window: np.ndarray, terminated: bool, ended: bool) -> None:
            closed[open_id[i]] = (window, reward_sum[i], discount[i], terminated, ended)
            open_id[i] = -1

        for _ in range(steps_per_env):
            replan = np.flatnonzero(steps_left == 0)
            if replan.size:
                actions, tensors = decide(self.history[replan])
                payload_parts.append(tensors)
                for i in replan:
                    open_id[i] = len(obs_rec)
                    env_order[i].append(len(obs_rec))
                    obs_rec.append(self.history[i].copy())
                    env_rec.append(int(i))
                    closed.append(())
                pending[replan] = actions
                steps_left[replan] = self.act_steps
                reward_sum[replan], discount[replan] = 0.0, 1.0
            obs, reward, terminated, truncated, info = self.envs.step(pending[np.arange(n), self.act_steps - steps_left])
            obs = np.asarray(obs, np.float32)
            reward_sum += discount * reward
            discount *= gamma
            steps_left -= 1
            done = terminated | truncated
            self._track_episodes(reward, done, step_outcome(info, done, "is_success", default=np.nan), stats)
            for i in range(n):
                if done[i]:
                    final = np.asarray(info["final_obs"][i], np.float32)
                    close(i, np.concatenate([self.history[i, 1:], final[None]]), bool(terminated[i]), True)
                    self.history[i] = obs[i][None]  # the next episode's window: its first observation repeated
                    steps_left[i] = 0
                else:
                    self.history[i] = np.concatenate([self.history[i, 1:], obs[i][None]])
                    if steps_left[i] == 0:
                        close(i, self.history[i].copy(), False, False)
        for i in np.flatnonzero(open_id >= 0):
            close(i, self.history[i].copy(), False, False)

        next_obs, rewards, discounts, terminated_rec, ended = zip(*closed)
        grid = np.full((max(map(len, env_order)), n), -1, dtype=np.int64)
        for i, order in enumerate(env_order):
            grid[: len(order), i] = order
        batch = DecisionBatch(
            obs=np.stack(obs_rec),
            next_obs=np.stack(next_obs),
            reward=np.asarray(rewards, np.float32),
            discount=np.asarray(discounts, np.float32),
            terminated=np.asarray(terminated_rec, bool),
            episode_end=np.asarray(ended, bool),
            env=np.asarray(env_rec, np.int64),
            grid=grid,
            payload={k: torch.cat([part[k] for part in payload_parts]) for k in payload_parts[0]},
        )
        return batch, stats

    def close(self) -> None:
        self.envs.close()

    def _track_episodes(self, reward: np.ndarray, done: np.ndarray, success: np.ndarray, stats: EpisodeStats) -> None:
        self.episode_return += reward
        self.episode_length += 1
        reported = ~np.isnan(success)
        self.episode_success[reported] = np.fmax(self.episode_success[reported], success[reported])
        for i in np.flatnonzero(done):
            stats.returns.append(float(self.episode_return[i]))
            stats.lengths.append(int(self.episode_length[i]))
            stats.successes.append(float(self.episode_success[i]))
        self.episode_return[done], self.episode_length[done], self.episode_success[done] = 0.0, 0, np.nan


def local_chunk_rollouts(make_envs: Callable[[int, str], gym.vector.VectorEnv], seed: int) -> Callable[..., ChunkRollout]:
    """`TrainingContext.make_chunk_rollout` for `runtime=local`: every environment in this process (or its subprocesses)."""

    def make(num_envs: int, mode: str, obs_horizon: int, act_steps: int, gamma: float) -> ChunkRollout:
        return ChunkRollout(make_envs(num_envs, mode), obs_horizon, act_steps, gamma, seed=seed)

    return make
