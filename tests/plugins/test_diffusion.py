import pytest
import torch

from robotune.core import registry
from robotune.core.config import build_config
from robotune.plugins.diffusion import DiffusionConfig, DiffusionPolicy

from .conftest import TINY_UNET, assert_repeatable, assert_valid_chunks, mean_start_end


def test_registered_under_its_config_name():
    assert registry.get("policy", "diffusion") is DiffusionPolicy
    assert DiffusionPolicy.config_class is DiffusionConfig


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
def test_loss_decreases(toy, prediction_type):
    policy = toy.make(DiffusionPolicy, prediction_type=prediction_type)
    start, end = mean_start_end(toy.train(policy, steps=80))
    assert end < 0.6 * start, (start, end)


def test_trained_policy_reproduces_the_demonstrated_chunks(toy):
    policy = toy.make(DiffusionPolicy)
    toy.train(policy, steps=400)
    chunk = policy.predict_chunk(toy.obs[:64], deterministic=True, generator=torch.Generator().manual_seed(0))
    error = (policy.action_normalizer.normalize(chunk) - policy.action_normalizer.normalize(toy.action[:64])).abs().mean()
    assert error < 0.15, error


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm", "dpmsolver"])
def test_chunks_are_valid_and_repeatable(toy, scheduler):
    policy = toy.make(DiffusionPolicy, scheduler=scheduler, ddim_eta=1.0)
    toy.train(policy, steps=5)
    assert_valid_chunks(policy, toy)
    assert_repeatable(policy, toy)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
@pytest.mark.parametrize("scheduler,eta", [("ddim", 0.0), ("ddim", 0.6), ("ddpm", 0.0)])
@pytest.mark.parametrize("deterministic", [True, False])
def test_precomputed_sampler_matches_diffusers_step_loop(toy, prediction_type, scheduler, eta, deterministic):
    policy = toy.make(DiffusionPolicy, prediction_type=prediction_type, scheduler=scheduler, ddim_eta=eta)
    obs_norm = policy.obs_normalizer.normalize(toy.obs[:6])
    with torch.inference_mode():
        fast = policy.sample_chunk_norm(obs_norm, deterministic, torch.Generator().manual_seed(3))
        reference = policy.sample_chunk_norm_with_scheduler(obs_norm, deterministic, torch.Generator().manual_seed(3))
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)


def test_unet_backbone_trains_and_samples(toy):
    policy = toy.make(DiffusionPolicy, **{k: v for k, v in TINY_UNET.items() if k != "horizon"})
    start, end = mean_start_end(toy.train(policy, steps=30), window=5)
    assert end < start
    assert_valid_chunks(policy, toy, batch=2)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="policy.scheduler"):
        build_config(DiffusionConfig, {"scheduler": "euler"}, "policy/diffusion")
    with pytest.raises(ValueError, match="policy.prediction_type"):
        DiffusionConfig(prediction_type="v")
    with pytest.raises(ValueError, match="policy.num_inference_steps"):
        DiffusionConfig(num_inference_steps=0)
    with pytest.raises(ValueError, match="policy.backbone"):
        from .conftest import ToyProblem

        ToyProblem(num_samples=4).make(DiffusionPolicy, backbone="transformer")
