"""Shared pieces of the offline-RL tests: a tiny dataset with a known best action, and engines built on it.

TargetEnv (tests/rollout/toy_envs.py) rewards −|a − target|², and the observation is the target, so
the best policy copies its observation. The behaviour policy adds noise of std `noise` to it, so a
method that learns from these data should end closer to the target than the data are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from robotune.core.algorithm import TrainingContext
from robotune.core.dataset import Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes
from robotune.core.normalization import Normalizer
from robotune.core.regularizer import build_regularizer
from robotune.plugins.gaussian import GaussianConfig, GaussianPolicy
from tests.helpers import make_context
from tests.rollout.toy_envs import TargetEnv, TargetTask

TINY_ACTOR = dict(obs_horizon=1, horizon=1, act_steps=1, backbone="plain_mlp", hidden_dim=32, num_blocks=2, activation="relu", tanh_squash=True, fast_inference=False)


def target_dataset(episodes: int = 60, noise: float = 0.3, seed: int = 0) -> EpisodeDataset:
    env, rng = TargetEnv(), np.random.default_rng(seed)
    out = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 1000 + episode)
        steps = {k: [] for k in ("obs", "action", "reward", "terminated", "truncated")}
        done = False
        while not done:
            action = np.clip(obs + rng.normal(0, noise, 2), -1, 1).astype(np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(steps, (obs, action, reward, terminated, truncated)):
                steps[key].append(value)
            obs, done = next_obs, terminated or truncated
        out.append(Episode(
            obs=np.array(steps["obs"], np.float32), action=np.array(steps["action"], np.float32),
            reward=np.array(steps["reward"], np.float32), terminated=np.array(steps["terminated"]),
            truncated=np.array(steps["truncated"]), final_obs=obs.astype(np.float32),
        ))
    return concatenate_episodes(out, source="target-behaviour")


def tiny_actor(stochastic: bool = False) -> GaussianPolicy:
    torch.manual_seed(0)
    extra = dict(state_dependent_std=True, init_std=1.0, min_std=1e-4, max_std=7.0) if stochastic else {}
    config = GaussianConfig(name="gaussian", **{**TINY_ACTOR, **extra})
    task = TargetTask()
    return GaussianPolicy(config, task.spec, Normalizer.identity(2), Normalizer(task.spec.action_low, task.spec.action_high))


def offline_context(policy, dataset, work_dir: Path, regularizers: dict[str, dict] | None = None, critic: dict | None = None, seed: int = 0) -> TrainingContext:
    """`make_context` on the target task with the `mlp` critic (2x32 by default) and the named regularizers with these settings."""

    def build_regularizers(obs_dim: int, action_dim: int):
        return [build_regularizer(name, settings, obs_dim, action_dim) for name, settings in (regularizers or {}).items()]

    context = make_context(policy, TargetTask(), dataset, work_dir, seed, critic_overrides={"hidden_dims": (32, 32), **(critic or {})})
    return dataclasses.replace(context, build_regularizers=build_regularizers)


def policy_error(policy, dataset: EpisodeDataset) -> float:
    """Mean squared distance of the policy's deterministic action from the optimum (the observation)."""
    obs = torch.from_numpy(np.asarray(dataset.obs[:200]))
    action = policy.predict_chunk(obs.unsqueeze(1), deterministic=True)[:, 0]
    return float((action - obs).square().sum(-1).mean())


def behaviour_error(dataset: EpisodeDataset) -> float:
    return float(np.square(np.asarray(dataset.action) - np.asarray(dataset.obs)).sum(-1).mean())


def small_batch() -> dict[str, torch.Tensor]:
    """Two transitions in engine units, for hand computations."""
    return {
        "obs": torch.tensor([[0.0, 1.0], [1.0, -1.0]]),
        "action": torch.tensor([[0.0, 0.0], [1.0, 1.0]]),
        "reward": torch.tensor([1.0, -1.0]),
        "next_obs": torch.tensor([[1.0, 0.0], [0.0, 0.0]]),
        "next_action": torch.tensor([[0.5, 0.0], [-1.0, 1.0]]),
        "bootstrap": torch.tensor([0.99, 0.0]),
    }
