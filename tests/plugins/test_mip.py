import pytest
import torch

from robotune.core import registry
from robotune.plugins.mip import MinimumIterativePolicy, MIPConfig

from .conftest import TINY_UNET, assert_repeatable, assert_valid_chunks, mean_start_end


def test_registered_under_its_config_name():
    assert registry.get("policy", "mip") is MinimumIterativePolicy
    assert MinimumIterativePolicy.config_class is MIPConfig


def test_loss_decreases_and_both_steps_learn(toy):
    policy = toy.make(MinimumIterativePolicy)
    start, end = mean_start_end(toy.train(policy, steps=80))
    assert end < 0.5 * start, (start, end)
    _, metrics = policy.loss({"obs": toy.obs, "action": toy.action})
    assert metrics["step1_mse"] < 0.05 and metrics["step0_mse"] < 0.05, metrics


def test_loss_matches_the_two_step_formula(toy):
    """Recompute the loss by hand with the same noise: scale * (mse0 / t* + mse1 / (1 - t*))."""
    policy = toy.make(MinimumIterativePolicy, t_star=0.8, loss_scale=0.5)
    obs_norm = policy.obs_normalizer.normalize(toy.obs[:8])
    action_norm = policy.action_normalizer.normalize(toy.action[:8])
    torch.manual_seed(11)
    loss, _ = policy.compute_loss(obs_norm, action_norm, None)
    torch.manual_seed(11)
    noise = torch.randn_like(action_norm)
    cond = policy.obs_encoder(obs_norm)
    step0 = policy.network(torch.zeros_like(action_norm), cond, torch.zeros(8))
    step1 = policy.network(action_norm + 0.2 * noise, cond, torch.full((8,), 80.0))
    expected = 0.5 * ((step0 - action_norm).square().mean() / 0.8 + (step1 - action_norm).square().mean() / 0.2)
    torch.testing.assert_close(loss, expected)


def test_inference_is_two_calls_without_noise(toy):
    policy = toy.make(MinimumIterativePolicy, fast_inference=False)
    obs_norm = policy.obs_normalizer.normalize(toy.obs[:3])
    with torch.inference_mode():
        chunk = policy.sample_chunk_norm(obs_norm, False, torch.Generator().manual_seed(1))
        cond = policy.obs_encoder(obs_norm)
        first = policy.network(torch.zeros_like(chunk), cond, torch.zeros(3))
        second = policy.network(first, cond, torch.full((3,), 90.0))
        other_seed = policy.sample_chunk_norm(obs_norm, False, torch.Generator().manual_seed(2))
    torch.testing.assert_close(chunk, second)
    torch.testing.assert_close(chunk, other_seed, rtol=0, atol=0)


def test_chunks_are_valid_and_repeatable(toy):
    policy = toy.make(MinimumIterativePolicy)
    toy.train(policy, steps=5)
    assert_valid_chunks(policy, toy)
    assert_repeatable(policy, toy)


def test_unet_backbone_samples(toy):
    policy = toy.make(MinimumIterativePolicy, **{k: v for k, v in TINY_UNET.items() if k != "horizon"})
    toy.train(policy, steps=3)
    assert_valid_chunks(policy, toy, batch=2)


def test_t_star_is_validated():
    with pytest.raises(ValueError, match="policy.t_star"):
        MIPConfig(t_star=1.0)
