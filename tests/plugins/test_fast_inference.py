"""The NumPy twin must give the training-time torch model's actions; these tests hold it to 1e-4."""

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from robotune.core.normalization import Normalizer
from robotune.plugins.diffusion import DiffusionPolicy
from robotune.plugins.fast_inference import NumpyResidualMLP
from robotune.plugins.flow_matching import FlowMatchingPolicy
from robotune.plugins.gaussian import GaussianPolicy
from robotune.plugins.mip import MinimumIterativePolicy
from robotune.plugins.networks import ResidualMLP
from robotune.plugins.regression import RegressionPolicy

TOLERANCE = dict(rtol=0, atol=1e-4)

POLICIES = [
    (DiffusionPolicy, {}),
    (DiffusionPolicy, {"scheduler": "ddpm", "prediction_type": "sample"}),
    (DiffusionPolicy, {"ddim_eta": 1.0, "clip_sample": False}),
    (FlowMatchingPolicy, {"num_steps": 2}),
    (MinimumIterativePolicy, {}),
    (RegressionPolicy, {}),
    (GaussianPolicy, {}),
    (GaussianPolicy, {"state_dependent_std": True}),
]


def randomize_layer_norms(module: torch.nn.Module) -> None:
    """Trained LayerNorms are not identity; the twin folds their affines, so test with non-trivial ones."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("in_channels,time_dim", [(2, 16), (0, 0)])
def test_twin_computes_the_same_function(batch, in_channels, time_dim):
    torch.manual_seed(0)
    net = ResidualMLP(horizon=8, in_channels=in_channels, out_channels=3, cond_dim=6, hidden_dim=64, num_blocks=2, time_embed_dim=time_dim)
    randomize_layer_norms(net)
    chunk_in = torch.randn(batch, 8, in_channels) * 3  # large inputs also exercise Mish's overflow branch
    cond, t = torch.randn(batch, 6), torch.full((batch,), 42.0)
    with torch.no_grad():
        expected = net(chunk_in, cond, t if time_dim else None).reshape(batch, -1).numpy()
    twin = NumpyResidualMLP(net, Normalizer.identity(6), Normalizer.identity(3))
    with np.errstate(over="ignore"):
        out = twin(chunk_in.reshape(batch, -1).numpy() if in_channels else None, cond.numpy(), 42.0 if time_dim else None)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, **TOLERANCE)


@pytest.mark.parametrize("policy_class,overrides", POLICIES, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("batch", [1, 3])
def test_policies_give_the_same_chunks_on_both_paths(toy, policy_class, overrides, batch):
    policy = toy.make(policy_class, **overrides).eval()
    randomize_layer_norms(policy)
    with torch.no_grad():  # a non-trivial observation normaliser: the twin folds it into its input layer
        policy.obs_normalizer.center.uniform_(-0.5, 0.5)
        policy.obs_normalizer.half_range.uniform_(0.5, 2.0)
    obs = toy.obs[:batch]
    for deterministic in (True, False):
        fast = policy.predict_chunk(obs, deterministic, torch.Generator().manual_seed(4))
        assert "_numpy_twin" in policy.__dict__, "predict_chunk at a small CPU batch should use the NumPy twin"
        policy.config.fast_inference = False
        policy.train(False)  # drops the cached twin
        reference = policy.predict_chunk(obs, deterministic, torch.Generator().manual_seed(4))
        assert "_numpy_twin" not in policy.__dict__
        policy.config.fast_inference = True
        torch.testing.assert_close(fast, reference, **TOLERANCE)


def test_twin_is_rebuilt_after_an_in_place_update(toy):
    policy = toy.make(RegressionPolicy).eval()
    before = policy.predict_chunk(toy.obs[:1])
    with torch.no_grad():
        policy.action_normalizer.center.add_(1.0)  # as load_state_dict or an EMA update would, in place
    after = policy.predict_chunk(toy.obs[:1])
    torch.testing.assert_close(after, before + 1.0, **TOLERANCE)


def test_nan_observations_come_out_as_nan(toy):
    """The compiled kernel must not swallow NaN (fast-math without nnan): the deploy safety layer looks for it."""
    obs = toy.obs[:1].clone()
    obs[0, -1, 0] = float("nan")
    for policy_class, overrides in POLICIES[:5]:
        chunk = toy.make(policy_class, **overrides).eval().predict_chunk(obs, deterministic=True)
        assert torch.isnan(chunk).any(), policy_class.__name__


def test_compiled_kernels_release_the_gil():
    """The deploy runner plans in a thread beside its control loop (deploy/planner.py); it relies on this."""
    from robotune.plugins import _mlp_kernel

    for kernel in (_mlp_kernel.add_matmul, _mlp_kernel.residual_mlp, _mlp_kernel.sample_affine, _mlp_kernel.clamp_unnormalize_):
        assert kernel.targetoptions["nogil"] is True


def test_batches_above_the_limit_use_torch(toy):
    policy = toy.make(FlowMatchingPolicy, fast_inference_max_batch=2).eval()
    policy.predict_chunk(toy.obs[:3])
    assert "_numpy_twin" not in policy.__dict__
    policy.predict_chunk(toy.obs[:2])
    assert "_numpy_twin" in policy.__dict__


def test_twin_follows_training_updates_ema_and_loading(toy):
    """A stale twin would silently act with old weights; every way weights change must rebuild it."""
    policy = toy.make(MinimumIterativePolicy).eval()
    obs = toy.obs[:1]

    def assert_matches_torch(p):
        fast = p.predict_chunk(obs)
        with torch.inference_mode():
            p.config.fast_inference = False
            reference = p.predict_chunk(obs)
            p.config.fast_inference = True
        torch.testing.assert_close(fast, reference, **TOLERANCE)
        return fast

    before = assert_matches_torch(policy)
    ema = AveragedModel(policy, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True)
    ema_before = assert_matches_torch(ema.module)
    toy.train(policy, steps=3)  # optimizer steps, without calling eval() again
    after = assert_matches_torch(policy)
    assert not torch.allclose(before, after)
    ema.update_parameters(policy)
    assert not torch.allclose(ema_before, assert_matches_torch(ema.module))
    fresh = toy.make(MinimumIterativePolicy).eval()
    fresh.predict_chunk(obs)
    fresh.load_state_dict(policy.state_dict())
    torch.testing.assert_close(assert_matches_torch(fresh), after)


def test_loss_never_goes_through_numpy(toy):
    policy = toy.make(RegressionPolicy)
    loss, _ = policy.loss({"obs": toy.obs[:1], "action": toy.action[:1]})
    loss.backward()
    assert "_numpy_twin" not in policy.__dict__
