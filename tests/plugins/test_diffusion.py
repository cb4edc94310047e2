import subprocess
import sys

import numpy as np
import pytest
import torch

from robotune.core import registry
from robotune.core.config import build_config
from robotune.plugins.diffusion import (
    BETA_SCHEDULES,
    PRECOMPUTED_SCHEDULERS,
    DiffusionConfig,
    DiffusionPolicy,
    alphas_cumprod,
    inference_timesteps,
    make_scheduler,
)

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


@pytest.mark.parametrize("beta_schedule", BETA_SCHEDULES)
@pytest.mark.parametrize("train_steps,inference_steps", [(100, 10), (100, 7), (1000, 16), (50, 50), (100, 1)])
def test_noise_schedule_and_timesteps_equal_diffusers_exactly(beta_schedule, train_steps, inference_steps):
    """The sampler's constants come from these two tables; diffusers' schedulers are the reference."""
    config = DiffusionConfig(beta_schedule=beta_schedule, num_train_timesteps=train_steps, num_inference_steps=inference_steps)
    for name in PRECOMPUTED_SCHEDULERS:
        scheduler = make_scheduler(config, name)
        scheduler.set_timesteps(inference_steps)
        np.testing.assert_array_equal(alphas_cumprod(config), scheduler.alphas_cumprod.double().numpy())
        np.testing.assert_array_equal(inference_timesteps(config), scheduler.timesteps.numpy())


def test_building_and_sampling_does_not_import_diffusers():
    """Deployment loads and samples a policy; importing diffusers would cost it ~2.6 s before the first command."""
    script = (
        "import sys, torch\n"
        "from robotune.core.normalization import Normalizer\n"
        "from robotune.core.spec import TaskSpec\n"
        "from robotune.plugins.diffusion import DiffusionConfig, DiffusionPolicy\n"
        "spec = TaskSpec('toy', ('a', 'b'), (-1.0,), (1.0,), 10.0, 5)\n"
        "for scheduler in ('ddim', 'ddpm'):\n"
        "    config = DiffusionConfig(horizon=4, act_steps=2, scheduler=scheduler, hidden_dim=16, num_blocks=1)\n"
        "    policy = DiffusionPolicy(config, spec, Normalizer.identity(2), Normalizer.identity(1)).eval()\n"
        "    for deterministic in (True, False):\n"
        "        policy.predict_chunk(torch.zeros(1, 2, 2), deterministic, torch.Generator().manual_seed(0))\n"
        "        policy.export_for_inference().predict_chunk(torch.zeros(1, 2, 2), deterministic)\n"
        "print('diffusers' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_unet_backbone_trains_and_samples(toy):
    policy = toy.make(DiffusionPolicy, **{k: v for k, v in TINY_UNET.items() if k != "horizon"})
    start, end = mean_start_end(toy.train(policy, steps=30), window=5)
    assert end < start
    assert_valid_chunks(policy, toy, batch=2)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="policy.scheduler"):
        build_config(DiffusionConfig, {"scheduler": "euler"}, "policy/diffusion")
    with pytest.raises(ValueError, match="policy.beta_schedule"):
        DiffusionConfig(beta_schedule="sigmoid")
    with pytest.raises(ValueError, match="policy.prediction_type"):
        DiffusionConfig(prediction_type="v")
    with pytest.raises(ValueError, match="policy.num_inference_steps"):
        DiffusionConfig(num_inference_steps=0)
    with pytest.raises(ValueError, match="policy.backbone"):
        from .conftest import ToyProblem

        ToyProblem(num_samples=4).make(DiffusionPolicy, backbone="transformer")


def test_denoising_chain_log_prob_equals_the_gaussian_density_by_hand(toy):
    """DPPO's likelihood: each DDIM (eta=1) step is N(mu_k, max(sigma_k, min_std)^2); recompute it step by step."""
    import math

    from robotune.plugins.diffusion import DiffusionPolicy

    policy = toy.make(DiffusionPolicy, num_inference_steps=4, act_steps=3, rl_min_std=0.05)
    obs_norm = policy.obs_normalizer.normalize(toy.obs[:3])
    chunk, trace, sampled_log_prob = policy.sample_with_trace(obs_norm, torch.Generator().manual_seed(0))
    chain = trace["chain"]
    assert chain.shape == (3, 5, *chunk.shape[1:]) and torch.equal(chain[:, -1], chunk)
    coef = policy._rl_coefficients()
    cond = policy.obs_encoder(obs_norm)
    expected = torch.zeros(3)
    for k, t in enumerate(coef.timesteps):
        x = chain[:, k]
        out = policy.network(x, cond, torch.full((3,), t))
        x0 = (coef.r_xt[k] * x + coef.r_out[k] * out).clamp(-1, 1)
        mean = coef.c_x0[k] * x0 + coef.c_out[k] * out + coef.c_xt[k] * x
        std = max(coef.sigma[k], 0.05)
        z = (chain[:, k + 1, :3] - mean[:, :3]) / std
        expected += (-0.5 * z**2 - math.log(std) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(-1)
    torch.testing.assert_close(policy.log_prob(obs_norm, trace), expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(sampled_log_prob, expected, rtol=1e-5, atol=1e-4)  # accumulated while sampling
    assert all(s > 0 for s in coef.sigma[:-1])  # eta = 1: every step but the last is stochastic
