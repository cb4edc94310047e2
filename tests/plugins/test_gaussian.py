import pytest
import torch

from robotune.core import registry
from robotune.plugins.gaussian import GaussianConfig, GaussianPolicy

from .conftest import ACTION_DIM, HORIZON, assert_repeatable, assert_valid_chunks, mean_start_end


def test_registered_under_its_config_name():
    assert registry.get("policy", "gaussian") is GaussianPolicy
    assert GaussianPolicy.config_class is GaussianConfig


@pytest.mark.parametrize("state_dependent_std", [False, True])
def test_loss_decreases_and_std_shrinks(toy, state_dependent_std):
    policy = toy.make(GaussianPolicy, state_dependent_std=state_dependent_std)
    losses = toy.train(policy, steps=80)
    start, end = mean_start_end(losses)
    assert end < start - 0.3, (start, end)
    _, metrics = policy.loss({"obs": toy.obs, "action": toy.action})
    assert metrics["std"] < policy.config.init_std


@pytest.mark.parametrize("state_dependent_std", [False, True])
def test_chunks_are_valid_and_repeatable(toy, state_dependent_std):
    policy = toy.make(GaussianPolicy, state_dependent_std=state_dependent_std)
    toy.train(policy, steps=5)
    assert_valid_chunks(policy, toy)
    assert_repeatable(policy, toy)


def test_deterministic_chunk_is_the_mean(toy):
    policy = toy.make(GaussianPolicy)
    obs_norm = policy.obs_normalizer.normalize(toy.obs[:3])
    mean, _ = policy.distribution(obs_norm)
    torch.testing.assert_close(policy.sample_chunk_norm(obs_norm, True, None), mean)


def test_bimodal_demos_give_one_averaged_mode(toy):
    """Half the demos go to +0.8, half to -0.8 for the same observations: the fit sits in between."""
    policy = toy.make(GaussianPolicy, init_std=0.5)
    obs = toy.obs[:64].repeat(2, 1, 1)
    sign = torch.where(torch.arange(128) < 64, 1.0, -1.0)[:, None, None]
    target_norm = 0.8 * sign.expand(128, HORIZON, ACTION_DIM)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(150):
        loss, _ = policy.compute_loss(policy.obs_normalizer.normalize(obs), target_norm, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        mean, log_std = policy.distribution(policy.obs_normalizer.normalize(obs))
    assert mean.abs().mean() < 0.3  # the mean of two modes, which no demo ever did
    assert log_std.exp().mean() > 0.5  # one wide bump covers both modes


def test_std_bounds_are_validated():
    with pytest.raises(ValueError, match="policy.min_std"):
        GaussianConfig(min_std=0.6, init_std=0.5)


def test_log_prob_matches_the_gaussian_density_by_hand(toy):
    import math

    policy = toy.make(GaussianPolicy, act_steps=3)
    obs_norm = policy.obs_normalizer.normalize(toy.obs[:4])
    chunk, trace, sampled_log_prob = policy.sample_with_trace(obs_norm, torch.Generator().manual_seed(0))
    mean, log_std = policy.distribution(obs_norm)
    u, m, s = trace["latent"][:, :3], mean[:, :3], log_std[:3].exp()
    by_hand = (-0.5 * ((u - m) / s) ** 2 - torch.log(s) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(-1)
    torch.testing.assert_close(policy.log_prob(obs_norm, trace), by_hand)
    torch.testing.assert_close(sampled_log_prob, by_hand)
    torch.testing.assert_close(chunk, trace["latent"])


def test_tanh_squash_bounds_actions_and_corrects_the_density(toy):
    policy = toy.make(GaussianPolicy, tanh_squash=True, state_dependent_std=True, act_steps=2)
    obs_norm = policy.obs_normalizer.normalize(toy.obs[:64])
    chunk, log_prob = policy.rsample(obs_norm, torch.Generator().manual_seed(1))
    assert chunk.abs().max() < 1
    latent = torch.atanh(chunk[:, :2].clamp(-1 + 1e-6, 1 - 1e-6))
    mean, log_std = policy.distribution(obs_norm)
    base = torch.distributions.Normal(mean[:, :2], log_std[:, :2].exp()).log_prob(latent)
    expected = (base - torch.log1p(-torch.tanh(latent) ** 2)).flatten(1).sum(-1)
    torch.testing.assert_close(log_prob, expected, rtol=1e-3, atol=1e-3)
    log_prob.sum().backward()  # reparameterised: gradients reach the network
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.network.parameters())
