"""DSRL: the noise-steered policy is the base's deterministic sampler at the actor's noise; SAC trains the actor only."""

import numpy as np
import pytest
import torch

from robotune.plugins.dsrl import DSRL, DSRLConfig, NoiseSteeredPolicy
from tests.helpers import make_context
from tests.plugins.finetune_helpers import assert_reloads_to_the_same_actions, tiny_base
from tests.rollout.toy_envs import TargetTask


@pytest.mark.parametrize("base_name", ("diffusion", "flow"))
def test_zero_noise_actor_output_reproduces_the_base_policys_deterministic_chunk(base_name):
    task = TargetTask()
    base = tiny_base(base_name, task, num_inference_steps=3) if base_name == "diffusion" else tiny_base(base_name, task, num_steps=3)
    policy = NoiseSteeredPolicy.wrap(base)
    with torch.no_grad():
        policy.noise_actor.network.layers[-1].weight.zero_()  # mean head 0 -> w = m tanh(0) = 0
    obs = torch.rand(5, 1, 2) * 2 - 1
    obs_norm = base.obs_normalizer.normalize(obs)
    zero_noise = torch.zeros(5, 2, 2)
    # chunk_from_noise is the base's deterministic sampler: fed the generator's noise, it gives predict_chunk's chunk.
    noise = torch.randn((5, 2, 2), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        base.chunk_from_noise(obs_norm, noise), base.sample_chunk_norm(obs_norm, True, torch.Generator().manual_seed(3)), rtol=0, atol=0
    )
    expected = base.action_normalizer.unnormalize(base.chunk_from_noise(obs_norm, zero_noise).clamp(-1, 1))
    torch.testing.assert_close(policy.predict_chunk(obs, True), expected, rtol=0, atol=0)


def test_mip_has_no_noise_to_steer_and_the_error_says_so(tmp_path):
    task = TargetTask()
    with pytest.raises(TypeError, match="has no noise input.*residual_ppo"):
        DSRL(DSRLConfig(num_envs=1), make_context(tiny_base("mip", task), task=task, work_dir=tmp_path))


def test_dsrl_runs_sac_in_noise_space_and_leaves_the_base(tmp_path):
    task = TargetTask()
    base = tiny_base("diffusion", task, num_inference_steps=3)
    base_weights = {k: v.clone() for k, v in base.state_dict().items()}
    config = DSRLConfig(steps=12, num_envs=2, env_steps_per_step=1, learning_starts=8, batch_size=8, buffer_size=64, updates_per_step=2)
    algo = DSRL(config, make_context(base, task=task, work_dir=tmp_path))
    actor_before = [p.detach().clone() for p in algo.policy.noise_actor.parameters()]
    for _ in range(12):
        metrics = algo.step()
    algo.close()
    assert algo.action_size == 2 * 2 and algo.buffer.size == 24  # the critic scores the (H, Da) noise
    assert np.all(np.abs(algo.buffer.arrays["action"][:24]) <= config.noise_magnitude)
    assert np.isfinite(float(metrics["critic_loss"])) and algo.grad_steps == 2 * (12 - 4 + 1)
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, algo.policy.noise_actor.parameters()))
    for key, value in algo.policy.base.state_dict().items():
        assert torch.equal(value, base_weights[key]), key


def test_a_fine_tuned_dsrl_checkpoint_reloads_to_the_same_actions(tmp_path):
    policy = NoiseSteeredPolicy.wrap(tiny_base("flow", TargetTask(), num_steps=2), noise_magnitude=1.2)
    with torch.no_grad():
        for p in policy.noise_actor.parameters():
            p.add_(0.2 * torch.randn_like(p))
    loaded = assert_reloads_to_the_same_actions(policy, "dsrl", tmp_path)
    assert isinstance(loaded, NoiseSteeredPolicy) and loaded.config.noise_magnitude == 1.2
