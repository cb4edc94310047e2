"""DPPO: the denoising-step likelihood by hand, the frozen early steps, one iteration, and a checkpoint round trip."""

import math

import numpy as np
import pytest
import torch

from robotune.plugins.dppo import DPPO, DenoisingFinetunedPolicy, DPPOConfig
from tests.helpers import make_context
from tests.plugins.finetune_helpers import assert_reloads_to_the_same_actions, tiny_base
from tests.rollout.toy_envs import TargetTask


def make_policy(**settings) -> DenoisingFinetunedPolicy:
    base = tiny_base("diffusion", TargetTask(), num_inference_steps=5, horizon=4, act_steps=3, prediction_type="epsilon")
    return DenoisingFinetunedPolicy.wrap(base, **{"finetuned_steps": 3, **settings})


def test_denoising_step_log_prob_equals_the_gaussian_density_by_hand():
    """Each fine-tuned step i is N(mu_i, max(sigma_i, min_logprob_std)^2) per entry, clipped, averaged over executed entries."""
    policy = make_policy(min_logprob_std=0.3, min_sampling_std=0.2, noise_clip=0.5, log_prob_min=-1.5, log_prob_max=0.2)
    with torch.no_grad():
        for p in policy.finetuned_network.parameters():
            p.add_(0.05 * torch.randn_like(p))  # the fine-tuned steps differ from the base's
    obs_norm = torch.rand(4, 1, 2) * 2 - 1
    chunk, trace, log_prob = policy.sample_with_trace(obs_norm, torch.Generator().manual_seed(0))
    chain = trace["chain"]
    assert chain.shape == (4, 4, 4, 2) and torch.equal(chain[:, -1], chunk)  # K' + 1 latents

    coef, first = policy.train_coefficients, 5 - 3
    cond = obs_norm.flatten(1)
    expected = torch.zeros(4, 3)
    for i in range(3):
        k = first + i
        x = chain[:, i]
        eps = policy.finetuned_network(x, cond, torch.full((4,), coef.timesteps[k]))
        a_t = policy.base.train_scheduler.alphas_cumprod[coef.timesteps[k]].double().item()
        a_prev = policy.base.train_scheduler.alphas_cumprod[coef.timesteps[k + 1]].double().item() if k + 1 < 5 else 1.0
        x0 = ((x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1, 1)  # x0 clipping
        sigma = math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))  # DDIM, eta = 1
        mean = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        # Sampling: std floored at min_sampling_std, noise clipped to +-noise_clip.
        assert ((chain[:, i + 1] - mean).abs() <= max(sigma, 0.2) * 0.5 + 1e-5).all()
        std = max(sigma, 0.3)
        density = torch.exp(-0.5 * ((chain[:, i + 1] - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
        expected[:, i] = density[:, :3].log().clamp(-1.5, 0.2).mean(dim=(1, 2))
    torch.testing.assert_close(policy.chain_log_probs(obs_norm, chain), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(log_prob, expected.sum(-1), rtol=1e-4, atol=1e-4)
    step = torch.tensor([2, 0, 1, 2])
    torch.testing.assert_close(
        policy.step_log_prob(obs_norm, chain[torch.arange(4), step], chain[torch.arange(4), step + 1], step),
        expected[torch.arange(4), step], rtol=1e-4, atol=1e-4,
    )


def test_only_the_last_finetuned_steps_use_the_finetuned_network_and_eval_is_ddim_eta_zero():
    policy = make_policy(noise_clip=10.0)
    obs_norm = torch.rand(3, 1, 2) * 2 - 1
    base_chunk = policy.base.sample_chunk_norm(obs_norm, True, torch.Generator().manual_seed(1))
    torch.testing.assert_close(policy.sample_chunk_norm(obs_norm, True, torch.Generator().manual_seed(1)), base_chunk)
    before = policy.sample_chain(obs_norm, False, torch.Generator().manual_seed(2))
    with torch.no_grad():
        for p in policy.finetuned_network.parameters():
            p.add_(0.1)
    after = policy.sample_chain(obs_norm, False, torch.Generator().manual_seed(2))
    torch.testing.assert_close(after[:, 0], before[:, 0])  # the frozen steps' output is unchanged
    assert not torch.allclose(after[:, -1], before[:, -1])


def test_clip_range_grows_and_the_advantage_is_discounted_over_denoising_steps(tmp_path):
    task = TargetTask()
    config = DPPOConfig(steps=1, num_envs=2, rollout_steps=8, clip_range_first=1e-3, clip_range=0.01, denoising_discount=0.9, finetuned_steps=3)
    algo = DPPO(config, make_context(tiny_base("diffusion", task, num_inference_steps=4), task=task, work_dir=tmp_path))
    algo.close()
    clip = algo.step_clip.tolist()
    assert clip[0] == pytest.approx(1e-3) and clip[-1] == pytest.approx(0.01) and clip[0] < clip[1] < clip[2]
    assert clip[1] == pytest.approx(1e-3 + 9e-3 * (math.exp(1.5) - 1) / (math.exp(3) - 1))
    assert algo.step_weight.tolist() == pytest.approx([0.81, 0.9, 1.0])


def test_one_dppo_iteration_trains_the_finetuned_steps_and_leaves_the_base(tmp_path):
    task = TargetTask()
    base = tiny_base("diffusion", task, num_inference_steps=3)
    base_weights = {k: v.clone() for k, v in base.state_dict().items()}
    config = DPPOConfig(steps=1, num_envs=2, rollout_steps=8, epochs=2, batch_size=8, critic_warmup_iterations=0, finetuned_steps=2, lr=1e-3)
    algo = DPPO(config, make_context(base, task=task, work_dir=tmp_path))
    before = [p.detach().clone() for p in algo.policy.finetuned_network.parameters()]
    metrics = algo.step()
    algo.close()
    assert np.isfinite(metrics["policy_loss"]) and metrics["clip_fraction"] >= 0
    assert algo.grad_steps == 2 * (16 * 2 // 8)  # epochs x (decisions x K' / batch)
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.policy.finetuned_network.parameters()))
    for key, value in algo.policy.base.state_dict().items():
        assert torch.equal(value, base_weights[key]), key


def test_dppo_with_a_bc_loss_runs_and_reports_it(tmp_path):
    task = TargetTask()
    config = DPPOConfig(steps=1, num_envs=2, rollout_steps=8, epochs=1, batch_size=8, critic_warmup_iterations=0, finetuned_steps=2, bc_loss_coef=0.1)
    algo = DPPO(config, make_context(tiny_base("diffusion", task, num_inference_steps=3), task=task, work_dir=tmp_path))
    metrics = algo.step()
    algo.close()
    assert np.isfinite(metrics["bc_loss"])


def test_a_fine_tuned_dppo_checkpoint_reloads_to_the_same_actions(tmp_path):
    policy = make_policy()
    with torch.no_grad():
        for p in policy.finetuned_network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    loaded = assert_reloads_to_the_same_actions(policy, "dppo", tmp_path)
    assert isinstance(loaded, DenoisingFinetunedPolicy) and loaded.config.finetuned_steps == 3


def test_dppo_refuses_a_policy_that_is_not_diffusion(tmp_path):
    task = TargetTask()
    with pytest.raises(TypeError, match="algo=dppo fine-tunes a diffusion policy"):
        DPPO(DPPOConfig(num_envs=1), make_context(tiny_base("flow", task), task=task, work_dir=tmp_path))
