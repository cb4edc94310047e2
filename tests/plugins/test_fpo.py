"""FPO: its ratio is exactly 1 for unchanged weights; one iteration fine-tunes a flow policy; other policies are refused."""

import numpy as np
import pytest
import torch

from robotune.plugins.fpo import FPO, FPOConfig
from tests.helpers import make_context
from tests.plugins.finetune_helpers import tiny_base
from tests.rollout.toy_envs import TargetTask


def test_fpo_ratio_is_exactly_one_for_unchanged_parameters(tmp_path):
    task = TargetTask()
    config = FPOConfig(steps=1, num_envs=2, rollout_steps=8, epochs=1, batch_size=16, critic_warmup_iterations=0)
    algo = FPO(config, make_context(tiny_base("flow", task, num_steps=2), task=task, work_dir=tmp_path))
    batch, _ = algo.rollout.collect(8, algo.decide)
    samples = algo.policy_samples(batch, algo.policy.normalize_obs(batch.obs))
    with torch.no_grad():
        ratio = samples.log_ratio(torch.arange(samples.count)).exp()
    algo.close()
    assert torch.equal(ratio, torch.ones_like(ratio))  # the same stored (noise, time) pairs, the same weights


def test_one_fpo_iteration_changes_the_flow_policy(tmp_path):
    task = TargetTask()
    policy = tiny_base("flow", task, num_steps=2, rl_mc_samples=4)
    before = [p.detach().clone() for p in policy.parameters()]
    config = FPOConfig(steps=1, num_envs=2, rollout_steps=8, epochs=2, batch_size=8, critic_warmup_iterations=0, lr=1e-3)
    algo = FPO(config, make_context(policy, task=task, work_dir=tmp_path))
    metrics = algo.step()
    algo.close()
    assert np.isfinite(metrics["policy_loss"]) and algo.inference_policy() is policy
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))


def test_fpo_refuses_a_policy_without_the_flow_surrogate(tmp_path):
    task = TargetTask()
    with pytest.raises(TypeError, match="algo=fpo fine-tunes a flow-matching policy.*algo=dppo"):
        FPO(FPOConfig(num_envs=1), make_context(tiny_base("diffusion", task), task=task, work_dir=tmp_path))


def test_perturb_action_std_perturbs_the_sampled_chunk_and_its_target(tmp_path):
    """FPO's exploration noise: the chunk taken differs from the flow's sample by about the std, and the stored
    flow-matching target is that perturbed chunk (so the ratio still starts at exactly 1)."""
    task = TargetTask()
    policy = tiny_base("flow", task, num_steps=2)
    algo = FPO(FPOConfig(num_envs=1, perturb_action_std=0.2), make_context(policy, task=task, work_dir=tmp_path))
    obs_norm = torch.zeros(256, policy.config.obs_horizon, policy.obs_dim)
    clean = policy.sample_chunk_norm(obs_norm, False, torch.Generator().manual_seed(0))
    chunk, trace, _ = policy.sample_with_trace(obs_norm, torch.Generator().manual_seed(0))
    algo.close()
    assert policy.config.rl_action_noise == 0.2
    assert torch.equal(trace["action"], chunk)
    assert 0.18 < (chunk - clean).std().item() < 0.22
