import pytest
import torch

from robotune.core import registry
from robotune.plugins.flow_matching import FlowConfig, FlowMatchingPolicy

from .conftest import TINY_UNET, assert_repeatable, assert_valid_chunks, mean_start_end


def test_registered_under_its_config_name():
    assert registry.get("policy", "flow") is FlowMatchingPolicy
    assert FlowMatchingPolicy.config_class is FlowConfig


def test_loss_decreases(toy):
    policy = toy.make(FlowMatchingPolicy)
    start, end = mean_start_end(toy.train(policy, steps=80))
    assert end < 0.6 * start, (start, end)


@pytest.mark.parametrize("num_steps", [1, 2, 10])
def test_trained_policy_reproduces_the_demonstrated_chunks(toy, num_steps):
    policy = toy.make(FlowMatchingPolicy, num_steps=num_steps)
    toy.train(policy, steps=300)
    chunk = policy.predict_chunk(toy.obs[:64], deterministic=True, generator=torch.Generator().manual_seed(0))
    error = (policy.action_normalizer.normalize(chunk) - policy.action_normalizer.normalize(toy.action[:64])).abs().mean()
    assert error < 0.15, error


@pytest.mark.parametrize("num_steps", [1, 2])
def test_chunks_are_valid_and_repeatable(toy, num_steps):
    policy = toy.make(FlowMatchingPolicy, num_steps=num_steps)
    toy.train(policy, steps=5)
    assert_valid_chunks(policy, toy)
    assert_repeatable(policy, toy)


def test_one_euler_step_is_noise_plus_velocity(toy):
    """With N = 1 the chunk is ε + v(ε, o, 0): a hand computation of the integrator."""
    policy = toy.make(FlowMatchingPolicy, num_steps=1, fast_inference=False)
    obs_norm = policy.obs_normalizer.normalize(toy.obs[:3])
    with torch.inference_mode():
        chunk = policy.sample_chunk_norm(obs_norm, False, torch.Generator().manual_seed(5))
        noise = torch.randn(chunk.shape, generator=torch.Generator().manual_seed(5))
        velocity = policy.network(noise, policy.obs_encoder(obs_norm), torch.zeros(3))
    torch.testing.assert_close(chunk, noise + velocity)


def test_unet_backbone_samples(toy):
    policy = toy.make(FlowMatchingPolicy, **{k: v for k, v in TINY_UNET.items() if k != "horizon"}, num_steps=2)
    toy.train(policy, steps=3)
    assert_valid_chunks(policy, toy, batch=2)


def test_num_steps_is_validated():
    with pytest.raises(ValueError, match="policy.num_steps"):
        FlowConfig(num_steps=0)


def test_fpo_surrogate_ratio_is_one_for_unchanged_weights_and_moves_with_them(toy):
    from robotune.plugins.flow_matching import FlowMatchingPolicy

    policy = toy.make(FlowMatchingPolicy, num_steps=2, rl_mc_samples=4)
    obs_norm = policy.obs_normalizer.normalize(toy.obs[:5])
    chunk, trace, sampled_log_prob = policy.sample_with_trace(obs_norm, torch.Generator().manual_seed(0))
    assert trace["noise"].shape == (5, 4, *chunk.shape[1:]) and trace["time"].shape == (5, 4)
    old = policy.log_prob(obs_norm, trace)
    assert torch.equal(sampled_log_prob, old)
    assert torch.equal(torch.exp(policy.log_prob(obs_norm, trace) - old), torch.ones(5))
    # By hand for sample 0: minus the mean over pairs of the squared velocity error on the executed actions.
    a, eps, t = trace["action"][0], trace["noise"][0], trace["time"][0]
    cond = policy.obs_encoder(obs_norm[:1]).expand(4, -1)
    v = policy.network((1 - t[:, None, None]) * eps + t[:, None, None] * a, cond, t * 100.0)
    by_hand = -((v - (a - eps))[:, : policy.config.act_steps] ** 2).flatten(1).sum(-1).mean()
    torch.testing.assert_close(old[0], by_hand, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        next(policy.network.parameters()).add_(0.05)
    assert not torch.allclose(policy.log_prob(obs_norm, trace), old)
