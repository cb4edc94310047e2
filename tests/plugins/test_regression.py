import torch

from robotune.core import registry
from robotune.plugins.regression import RegressionConfig, RegressionPolicy

from .conftest import TINY_UNET, assert_repeatable, assert_valid_chunks, mean_start_end


def test_registered_under_its_config_name():
    assert registry.get("policy", "regression") is RegressionPolicy
    assert RegressionPolicy.config_class is RegressionConfig


def test_loss_decreases_to_a_good_fit(toy):
    policy = toy.make(RegressionPolicy)
    start, end = mean_start_end(toy.train(policy, steps=150))
    assert end < 0.1 * start, (start, end)
    chunk = policy.predict_chunk(toy.obs[:64])
    error = (policy.action_normalizer.normalize(chunk) - policy.action_normalizer.normalize(toy.action[:64])).abs().mean()
    assert error < 0.1, error


def test_chunks_are_valid_repeatable_and_mode_free(toy):
    policy = toy.make(RegressionPolicy)
    toy.train(policy, steps=5)
    assert_valid_chunks(policy, toy)
    assert_repeatable(policy, toy)
    obs = toy.obs[:4]
    torch.testing.assert_close(policy.predict_chunk(obs, True), policy.predict_chunk(obs, False))


def test_unet_backbone_varies_along_the_chunk(toy):
    """Without an input chunk the unet still needs its position code to make time-varying chunks."""
    policy = toy.make(RegressionPolicy, **{k: v for k, v in TINY_UNET.items() if k != "horizon"})
    toy.train(policy, steps=40)
    assert_valid_chunks(policy, toy, batch=2)
    chunk = policy.predict_chunk(toy.obs[:8])
    assert chunk.std(dim=1).mean() > 1e-3
