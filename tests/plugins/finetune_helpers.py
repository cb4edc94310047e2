"""Shared by the fine-tuning tests: tiny generative bases on the toy bandit, and a checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from robotune.core.checkpoint import load_checkpoint, save_checkpoint
from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy
from tests.rollout.toy_envs import TargetTask

# One observation, two-action chunks with one executed: small enough for a PPO or SAC iteration in well under a second.
TINY_BASE = dict(obs_horizon=1, horizon=2, act_steps=1, hidden_dim=32, num_blocks=1, time_embed_dim=8, fast_inference=False)


def tiny_base(name: str, task: TargetTask, **overrides) -> Policy:
    """An untrained diffusion, flow or MIP policy for the toy task (weights from seed 0)."""
    from robotune.core import registry

    policy_class = registry.get("policy", name)
    torch.manual_seed(0)
    config = policy_class.config_class(name=name, **{**TINY_BASE, **overrides})
    return policy_class(config, task.spec, Normalizer.identity(2), Normalizer(task.spec.action_low, task.spec.action_high))


def assert_reloads_to_the_same_actions(policy: Policy, algorithm: str, directory: Path) -> Policy:
    """Save `policy` as the checkpoint of a fine-tuning run records it (the policy's own config under
    `policy`), rebuild it with `load_checkpoint` as `robotune eval` and `robotune deploy` do, check that
    it predicts the same chunks in both modes, and return it."""
    config = OmegaConf.create(
        {"task": {"name": "reach_around"}, "policy": OmegaConf.structured(policy.config), "algo": {"name": algorithm}}
    )
    loaded = load_checkpoint(save_checkpoint(directory, 1, policy, {"step": 1}, config)).policy
    assert type(loaded) is type(policy) and not loaded.training
    obs = torch.rand(5, policy.config.obs_horizon, policy.obs_dim) * 2 - 1
    for deterministic in (True, False):
        expected = policy.predict_chunk(obs, deterministic, torch.Generator().manual_seed(4))
        torch.testing.assert_close(loaded.predict_chunk(obs, deterministic, torch.Generator().manual_seed(4)), expected, rtol=0, atol=0)
    return loaded
