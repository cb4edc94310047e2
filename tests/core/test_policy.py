"""Policy.normalize_obs: one map from raw observation windows, stacked or flattened, array or tensor."""

import numpy as np
import torch

from robotune.core.normalization import Normalizer
from robotune.plugins.gaussian import GaussianConfig, GaussianPolicy
from tests.rollout.toy_envs import TargetTask


def test_normalize_obs_takes_windows_or_flat_rows_as_arrays_or_tensors():
    task = TargetTask()
    config = GaussianConfig(name="gaussian", obs_horizon=3, horizon=1, act_steps=1, hidden_dim=8, num_blocks=1, fast_inference=False)
    policy = GaussianPolicy(config, task.spec, Normalizer(np.array([0.0, -2.0]), np.array([4.0, 2.0])), Normalizer.identity(2))
    windows = np.random.default_rng(0).uniform(-2, 4, (5, 3, 2)).astype(np.float32)
    expected = torch.from_numpy((windows - np.array([2.0, 0.0], np.float32)) / np.array([2.0, 2.0], np.float32))
    for obs in (windows, windows.reshape(5, 6), torch.from_numpy(windows), torch.from_numpy(windows).flatten(1)):
        normalised = policy.normalize_obs(obs)
        assert normalised.shape == (5, 3, 2)
        torch.testing.assert_close(normalised, expected, rtol=0, atol=1e-6)
