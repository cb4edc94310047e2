"""Residual PPO: a residual policy starts as its base, trains only its residual, and reloads from one checkpoint."""

import math

import numpy as np
import pytest
import torch

from robotune.plugins.residual_ppo import ResidualPolicy, ResidualPPO, ResidualPPOConfig
from tests.helpers import make_context
from tests.plugins.finetune_helpers import assert_reloads_to_the_same_actions, tiny_base
from tests.rollout.toy_envs import TargetTask

BASES = ("diffusion", "flow", "mip")


@pytest.mark.parametrize("base_name", BASES)
def test_a_fresh_residual_policy_acts_exactly_like_its_base(base_name):
    task = TargetTask()
    base = tiny_base(base_name, task)
    policy = ResidualPolicy.wrap(base, residual_scale=0.5)
    obs = torch.rand(6, 1, 2) * 2 - 1
    for seed in (0, 1):
        expected = base.predict_chunk(obs, True, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(policy.predict_chunk(obs, True, torch.Generator().manual_seed(seed)), expected, rtol=0, atol=0)
    # The stochastic residual moves the executed action only, by scale * N(0, e^{2 log_std}).
    expected = base.predict_chunk(obs, True, torch.Generator().manual_seed(0))
    stochastic = policy.predict_chunk(obs, False, torch.Generator().manual_seed(0))
    assert not torch.equal(stochastic[:, 0], expected[:, 0]) and torch.equal(stochastic[:, 1], expected[:, 1])


def test_residual_log_prob_is_the_gaussian_density_of_the_correction():
    task = TargetTask()
    policy = ResidualPolicy.wrap(tiny_base("diffusion", task), residual_log_std=-0.5)
    with torch.no_grad():
        policy.residual[-1].bias.fill_(0.3)  # a non-zero mean, so the density is not centred on 0
    obs_norm = torch.rand(4, 1, 2) * 2 - 1
    chunk, trace, log_prob = policy.sample_with_trace(obs_norm, torch.Generator().manual_seed(3))
    z = (trace["delta"] - 0.3) / math.exp(-0.5)
    expected = (-0.5 * z**2 + 0.5 - 0.5 * math.log(2 * math.pi)).flatten(1).sum(-1)
    torch.testing.assert_close(log_prob, expected)
    torch.testing.assert_close(policy.log_prob(obs_norm, trace), expected)
    torch.testing.assert_close(chunk[:, :1], trace["base_chunk"][:, :1] + 0.1 * trace["delta"])


def test_one_residual_ppo_iteration_trains_the_residual_and_leaves_the_base(tmp_path):
    task = TargetTask()
    base = tiny_base("mip", task)
    base_weights = {k: v.clone() for k, v in base.state_dict().items()}
    config = ResidualPPOConfig(steps=1, num_envs=2, rollout_steps=8, epochs=2, batch_size=8, critic_warmup_iterations=0, lr=1e-2)
    algo = ResidualPPO(config, make_context(base, task=task, work_dir=tmp_path))
    residual_before = [p.detach().clone() for p in algo.policy.residual.parameters()]
    metrics = algo.step()
    algo.close()
    assert np.isfinite(metrics["policy_loss"]) and algo.env_steps == 16
    assert any(not torch.equal(a, b) for a, b in zip(residual_before, algo.policy.residual.parameters()))
    for key, value in algo.policy.base.state_dict().items():
        assert torch.equal(value, base_weights[key]), key
    assert algo.inference_policy() is algo.policy and algo.policy.config.base["name"] == "mip"


def test_a_fine_tuned_residual_checkpoint_reloads_to_the_same_actions(tmp_path):
    task = TargetTask()
    policy = ResidualPolicy.wrap(tiny_base("flow", task), residual_scale=0.2)
    with torch.no_grad():
        for p in policy.residual.parameters():
            p.normal_(0, 0.3)  # as after training: the residual now changes the actions
    loaded = assert_reloads_to_the_same_actions(policy, "residual_ppo", tmp_path)
    assert loaded.config.residual_scale == 0.2 and loaded.config.base["name"] == "flow"
    obs = torch.rand(5, 1, 2) * 2 - 1
    steered = loaded.predict_chunk(obs, True, torch.Generator().manual_seed(4))
    assert not torch.equal(steered, policy.base.predict_chunk(obs, True, torch.Generator().manual_seed(4)))


def test_a_residual_policy_without_a_base_names_the_field():
    from robotune.plugins.residual_ppo import ResidualPolicyConfig

    task = TargetTask()
    base = tiny_base("flow", task)
    with pytest.raises(ValueError, match="policy.base is empty"):
        ResidualPolicy(ResidualPolicyConfig(name="residual", **{k: getattr(base.config, k) for k in ("obs_horizon", "horizon", "act_steps")}),
                       task.spec, base.obs_normalizer, base.action_normalizer)
