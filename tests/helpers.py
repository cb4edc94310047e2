"""Helpers shared by tests: composing robotune's real Hydra configs, and tiny fast overrides."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from robotune.configs import store_plugin_configs
from robotune.core.registry import load_plugins


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    load_plugins()
    store_plugin_configs()
    with initialize_config_module("robotune.configs", version_base=None):
        return compose(config_name, overrides=overrides)


def tiny_train_overrides(tmp_path: Path, policy: str = "gaussian", steps: int = 60) -> list[str]:
    """A run that trains in about a second: few demos, few steps, small batches, few eval episodes."""
    return [
        f"policy={policy}",
        f"algo.steps={steps}",
        "policy.hidden_dim=64",
        "policy.num_blocks=1",
        "algo.batch_size=32",
        "algo.warmup_steps=5",
        "data.num_episodes=8",
        f"data.cache_dir={tmp_path / 'data'}",
        f"run_dir={tmp_path / 'run'}",
        "eval.episodes=4",
        "eval.num_envs=2",
        "logger=quiet",
        "logger.log_every=10",
        "checkpoint_every=20",
    ]


def make_context(policy, task=None, dataset=None, work_dir: Path | None = None, seed: int = 0, critic_overrides=None):
    """A TrainingContext for unit tests: the built-in `mlp` critic, no regularizers, CPU."""
    import torch

    from robotune.core.algorithm import TrainingContext
    from robotune.plugins.ensemble_critic import EnsembleCritic, EnsembleCriticConfig
    from robotune.rollout.chunk_rollout import local_chunk_rollouts
    from robotune.rollout.vector import make_vector_env

    def build_critic(obs_dim: int, action_dim: int):
        return EnsembleCritic(EnsembleCriticConfig(**(critic_overrides or {})), obs_dim, action_dim)

    def make_envs(num_envs: int, mode: str = "sync"):
        return make_vector_env(task, num_envs, mode)

    return TrainingContext(
        policy=policy,
        task=task,
        dataset=dataset,
        make_envs=make_envs,
        make_chunk_rollout=local_chunk_rollouts(make_envs, seed),
        build_critic=build_critic,
        build_regularizers=lambda obs_dim, action_dim: [],
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(seed),
        work_dir=work_dir or Path("."),
        seed=seed,
    )
