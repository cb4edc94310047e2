"""PPO and SAC learn a small continuous-control problem from scratch, in a few seconds each."""

import numpy as np
import pytest
import torch

from robotune.core.normalization import Normalizer
from robotune.plugins.gaussian import GaussianConfig, GaussianPolicy
from robotune.plugins.ppo import PPO, PPOConfig
from robotune.plugins.actor_critic import SAC, SACConfig
from tests.helpers import make_context
from tests.rollout.toy_envs import TargetTask

SINGLE_STEP = dict(obs_horizon=1, horizon=1, act_steps=1, backbone="plain_mlp", hidden_dim=32, num_blocks=2, fast_inference=False)


def make_policy(task: TargetTask, **overrides) -> GaussianPolicy:
    torch.manual_seed(0)
    config = GaussianConfig(name="gaussian", **{**SINGLE_STEP, **overrides})
    return GaussianPolicy(config, task.spec, Normalizer.identity(2), Normalizer(task.spec.action_low, task.spec.action_high))


def returns_of(algorithm, iterations: int) -> list[float]:
    out = []
    for _ in range(iterations):
        metrics = algorithm.step()
        if "episode_return" in metrics:
            out.append(float(metrics["episode_return"]))
    return out


def test_ppo_raises_the_return_from_scratch(tmp_path):
    task = TargetTask()
    context = make_context(make_policy(task, init_std=0.5), task=task, work_dir=tmp_path, critic_overrides={"hidden_dims": (32,)})
    ppo = PPO(PPOConfig(steps=25, num_envs=4, rollout_steps=40, epochs=4, batch_size=40, lr=3e-3, critic_lr=3e-3), context)
    returns = returns_of(ppo, 25)
    ppo.close()
    assert np.mean(returns[-3:]) > np.mean(returns[:3]) + 1.5, returns
    assert ppo.env_steps == 25 * 4 * 40 and ppo.grad_steps == 25 * 4 * 4


@pytest.mark.parametrize("bf16_autocast", [False, True])
def test_sac_raises_the_return_from_scratch_and_persists_its_buffer(tmp_path, bf16_autocast):
    task = TargetTask()
    policy = make_policy(task, tanh_squash=True, state_dependent_std=True, init_std=1.0, min_std=1e-4, max_std=7.0)
    context = make_context(policy, task=task, work_dir=tmp_path, critic_overrides={"hidden_dims": (32, 32)})
    config = SACConfig(steps=600, batch_size=64, learning_starts=100, buffer_size=1000, actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, bf16_autocast=bf16_autocast)
    sac = SAC(config, context)
    returns = returns_of(sac, 600)
    sac.close()
    assert np.mean(returns[-10:]) > np.mean(returns[:10]) + 1.5, returns
    assert sac.grad_steps == 600 - 100 + 1 and sac.buffer.size == 600
    assert (tmp_path / "replay" / "obs.npy").exists()
    state = sac.state_dict()
    assert state["buffer"]["size"] == 600 and state["buffer"]["position"] == 600


def test_ppo_trains_generative_policies_through_their_likelihoods(tmp_path):
    """Diffusion (denoising chain) and flow matching (FPO surrogate) plug into the same PPO engine."""
    from robotune.plugins.diffusion import DiffusionConfig, DiffusionPolicy
    from robotune.plugins.flow_matching import FlowConfig, FlowMatchingPolicy

    task = TargetTask()
    tiny = dict(obs_horizon=1, horizon=2, act_steps=1, hidden_dim=32, num_blocks=1, time_embed_dim=8, fast_inference=False)
    for policy_class, config in (
        (DiffusionPolicy, DiffusionConfig(name="diffusion", num_inference_steps=3, **tiny)),
        (FlowMatchingPolicy, FlowConfig(name="flow", num_steps=2, rl_mc_samples=2, **tiny)),
    ):
        torch.manual_seed(0)
        policy = policy_class(config, task.spec, Normalizer.identity(2), Normalizer(task.spec.action_low, task.spec.action_high))
        before = [p.detach().clone() for p in policy.parameters()]
        ppo = PPO(PPOConfig(steps=1, num_envs=2, rollout_steps=8, epochs=1, batch_size=8, lr=1e-3), make_context(policy, task=task, work_dir=tmp_path))
        metrics = ppo.step()
        ppo.close()
        assert np.isfinite(metrics["policy_loss"]) and abs(metrics["approx_kl"]) < 1.0
        assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters())), policy_class.__name__
