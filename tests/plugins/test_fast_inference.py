"""The NumPy twin must give the training-time torch model's actions; these tests hold it to 1e-4."""

import numpy as np
import pytest
import torch

from robotune.core.normalization import Normalizer
from robotune.plugins.diffusion import DiffusionPolicy
from robotune.plugins.fast_inference import ExportedPolicy, NumpyConditionalUnet1D, NumpyResidualMLP
from robotune.plugins.flow_matching import FlowMatchingPolicy
from robotune.plugins.gaussian import GaussianPolicy
from robotune.plugins.mip import MinimumIterativePolicy
from robotune.plugins.networks import ConditionalUnet1D, ResidualMLP
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
UNET = {"backbone": "unet", "unet_channels": (16, 32), "unet_kernel_size": 3, "unet_groups": 4}
UNET_POLICIES = [
    (DiffusionPolicy, UNET),
    (DiffusionPolicy, {**UNET, "scheduler": "ddpm"}),
    (FlowMatchingPolicy, {**UNET, "num_steps": 2}),
    (MinimumIterativePolicy, UNET),
    (RegressionPolicy, UNET),
    (GaussianPolicy, UNET),
]


def randomize_layer_norms(module: torch.nn.Module) -> None:
    """Trained norms are not identity; the twins fold or apply their affines, so test with non-trivial ones."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
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


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(
    "in_channels,time_dim,channels,kernel_size",
    [(2, 16, (16, 32, 64), 5), (0, 0, (16, 8), 3)],  # (16, 8): the up path's first block has no skip conv (2 * 8 = 16)
)
def test_unet_twin_computes_the_same_function(batch, in_channels, time_dim, channels, kernel_size):
    torch.manual_seed(0)
    net = ConditionalUnet1D(16, in_channels, 3, cond_dim=6, channels=channels, kernel_size=kernel_size, groups=4, time_embed_dim=time_dim)
    randomize_layer_norms(net)
    obs_normalizer = Normalizer(-2 * np.ones(3), np.array([1.0, 2.0, 3.0]))  # the twin normalises raw observations itself
    chunk_in = torch.randn(batch, 16, in_channels) * 3  # large inputs also exercise Mish's overflow branch
    obs, t = torch.randn(batch, 2, 3), torch.full((batch,), 42.0)
    with torch.no_grad():
        expected = net(chunk_in, obs_normalizer.normalize(obs).flatten(1), t if time_dim else None).reshape(batch, -1).numpy()
    twin = NumpyConditionalUnet1D(net, obs_normalizer, Normalizer.identity(3))
    with np.errstate(over="ignore"):
        out = twin(chunk_in.reshape(batch, -1).numpy() if in_channels else None, obs.reshape(batch, -1).numpy(), 42.0 if time_dim else None)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, **TOLERANCE)


@pytest.mark.parametrize("policy_class,overrides", POLICIES + UNET_POLICIES, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("batch", [1, 3])
def test_policies_give_the_same_chunks_on_both_paths(toy, policy_class, overrides, batch):
    policy = toy.make(policy_class, **overrides).eval()
    randomize_layer_norms(policy)
    with torch.no_grad():  # a non-trivial observation normaliser: the twin folds it into its input layer
        policy.obs_normalizer.center.uniform_(-0.5, 0.5)
        policy.obs_normalizer.half_range.uniform_(0.5, 2.0)
    exported = policy.export_for_inference()
    assert isinstance(exported, ExportedPolicy)
    obs = toy.obs[:batch]
    for deterministic in (True, False):
        fast = exported.predict_chunk(obs, deterministic, torch.Generator().manual_seed(4))
        reference = policy.predict_chunk(obs, deterministic, torch.Generator().manual_seed(4))
        torch.testing.assert_close(fast, reference, **TOLERANCE)


def test_an_export_is_a_snapshot_and_a_new_export_sees_new_weights(toy):
    policy = toy.make(RegressionPolicy).eval()
    exported = policy.export_for_inference()
    before = exported.predict_chunk(toy.obs[:1])
    with torch.no_grad():
        policy.action_normalizer.center.add_(1.0)  # as load_state_dict or an optimizer step would, in place
    torch.testing.assert_close(exported.predict_chunk(toy.obs[:1]), before, rtol=0, atol=0)
    torch.testing.assert_close(policy.export_for_inference().predict_chunk(toy.obs[:1]), before + 1.0, **TOLERANCE)
    torch.testing.assert_close(policy.predict_chunk(toy.obs[:1]), before + 1.0, **TOLERANCE)  # the torch model follows at once


@pytest.mark.parametrize("overrides", [{}, UNET], ids=["mlp", "unet"])
def test_an_export_does_not_see_later_changes_to_the_time_embedding(toy, overrides):
    """The twins compute the time embedding's part lazily, per set of sampler times: from a snapshot."""
    policy = toy.make(DiffusionPolicy, **overrides).eval()
    before = policy.predict_chunk(toy.obs[:1], True, torch.Generator().manual_seed(0))
    exported = policy.export_for_inference()
    with torch.no_grad():
        policy.network.time_embedding[-1].bias.add_(1.0)
    torch.testing.assert_close(exported.predict_chunk(toy.obs[:1], True, torch.Generator().manual_seed(0)), before, **TOLERANCE)


def test_nan_observations_come_out_as_nan(toy):
    """The compiled kernel must not swallow NaN (fast-math without nnan): the deploy safety layer looks for it."""
    obs = toy.obs[:1].clone()
    obs[0, -1, 0] = float("nan")
    for policy_class, overrides in POLICIES[:5] + UNET_POLICIES[:1]:
        chunk = toy.make(policy_class, **overrides).export_for_inference().predict_chunk(obs, deterministic=True)
        assert torch.isnan(chunk).any(), policy_class.__name__


def test_compiled_kernels_release_the_gil():
    """The deploy runner plans in a thread beside its control loop (deploy/planner.py); it relies on this."""
    from robotune.plugins import _mlp_kernel, _unet_kernel

    for kernel in (_mlp_kernel.add_matmul, _mlp_kernel.residual_mlp, _mlp_kernel.sample_affine, _mlp_kernel.clamp_unnormalize_):
        assert kernel.targetoptions["nogil"] is True
    for kernel in (_unet_kernel.network, _unet_kernel.sample_affine):
        assert kernel.targetoptions["nogil"] is True


def test_batches_above_the_limit_and_other_backbones_use_torch(toy, monkeypatch):
    policy = toy.make(FlowMatchingPolicy, fast_inference_max_batch=2).eval()
    exported = policy.export_for_inference()
    calls = []
    monkeypatch.setattr(exported.twin, "sample", lambda *args: calls.append(args[0].shape[0]) or NumpyResidualMLP.sample(exported.twin, *args))
    exported.predict_chunk(toy.obs[:3])
    exported.predict_chunk(toy.obs[:2])
    assert calls == [2]
    assert not isinstance(toy.make(FlowMatchingPolicy, fast_inference=False).export_for_inference(), ExportedPolicy)
    assert not isinstance(toy.make(FlowMatchingPolicy, backbone="plain_mlp").export_for_inference(), ExportedPolicy)


def test_training_and_the_policy_itself_never_go_through_numpy(toy, monkeypatch):
    """Fine-tuning must see the torch model: only an explicit export builds a twin."""
    built = []
    original = NumpyResidualMLP.__init__
    monkeypatch.setattr(NumpyResidualMLP, "__init__", lambda self, *a: built.append(1) or original(self, *a))
    policy = toy.make(MinimumIterativePolicy)
    loss, _ = policy.loss({"obs": toy.obs[:1], "action": toy.action[:1]})
    loss.backward()
    policy.eval().predict_chunk(toy.obs[:1])
    assert built == []
    policy.export_for_inference()
    assert built == [1]
