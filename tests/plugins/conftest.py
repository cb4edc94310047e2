"""A tiny synthetic chunk-imitation problem shared by the policy tests.

Raw actions live in [-2, 3] x [0, 10] so that a chunk leaving the normaliser's bounds, or a missing
unnormalisation, shows up in raw units.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robotune.core.normalization import Normalizer
from robotune.core.spec import TaskSpec

OBS_DIM, ACTION_DIM, OBS_HORIZON, HORIZON = 3, 2, 2, 8
ACTION_LOW, ACTION_HIGH = (-2.0, 0.0), (3.0, 10.0)
TINY = {"obs_horizon": OBS_HORIZON, "horizon": HORIZON, "act_steps": 4, "hidden_dim": 64, "num_blocks": 1, "time_embed_dim": 16}
TINY_UNET = {**TINY, "backbone": "unet", "unet_channels": (16, 32), "unet_kernel_size": 3, "unet_groups": 4}


class ToyProblem:
    def __init__(self, num_samples: int = 256, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.spec = TaskSpec(
            name="toy",
            obs_names=tuple(f"x{i}" for i in range(OBS_DIM)),
            action_low=ACTION_LOW,
            action_high=ACTION_HIGH,
            control_rate_hz=10.0,
            max_episode_steps=50,
        )
        obs = rng.uniform(-1, 1, (num_samples, OBS_HORIZON, OBS_DIM)).astype(np.float32)
        # Each chunk is a smooth ramp whose start and slope depend on the last observation.
        ramp = np.linspace(0, 1, HORIZON, dtype=np.float32)[None, :, None]
        start, slope = np.tanh(obs[:, -1, :ACTION_DIM])[:, None, :], obs[:, -1, -1:][:, None, :]
        unit = np.clip(0.6 * start + 0.3 * slope * ramp, -1, 1)  # in [-1, 1]
        low, high = np.array(ACTION_LOW, np.float32), np.array(ACTION_HIGH, np.float32)
        action = low + (unit + 1) / 2 * (high - low)
        self.obs, self.action = torch.from_numpy(obs), torch.from_numpy(action.astype(np.float32))
        self.obs_normalizer = Normalizer(-np.ones(OBS_DIM), np.ones(OBS_DIM))
        self.action_normalizer = Normalizer(low, high)

    def make(self, policy_class, **overrides):
        torch.manual_seed(0)
        config = policy_class.config_class(**{**TINY, **overrides})
        return policy_class(config, self.spec, self.obs_normalizer, self.action_normalizer)

    def train(self, policy, steps: int, batch_size: int = 64, lr: float = 2e-3) -> list[float]:
        """Plain Adam on random batches; returns the loss per step."""
        torch.manual_seed(0)
        optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
        losses = []
        for _ in range(steps):
            index = torch.randint(0, len(self.obs), (batch_size,))
            loss, metrics = policy.loss({"obs": self.obs[index], "action": self.action[index]})
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            assert set(metrics) >= {"loss"} and all(isinstance(v, float) for v in metrics.values())
        return losses


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine OpenMP's waiting
    threads made these tests 10-40x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def toy() -> ToyProblem:
    return ToyProblem()


def assert_valid_chunks(policy, toy: ToyProblem, batch: int = 5) -> None:
    """Shape (B, H, Da), finite, raw values inside the action normaliser's bounds, in both modes."""
    obs = toy.obs[:batch]
    for deterministic in (True, False):
        chunk = policy.predict_chunk(obs, deterministic=deterministic, generator=torch.Generator().manual_seed(0))
        assert chunk.shape == (batch, HORIZON, ACTION_DIM)
        assert torch.isfinite(chunk).all()
        assert (chunk >= torch.tensor(ACTION_LOW) - 1e-5).all() and (chunk <= torch.tensor(ACTION_HIGH) + 1e-5).all()
        chunk_norm = policy.sample_chunk_norm(
            policy.obs_normalizer.normalize(obs), deterministic, torch.Generator().manual_seed(0)
        )
        assert chunk_norm.shape == (batch, HORIZON, ACTION_DIM)


# Policies that sample with no noise at all, as their module docstrings say: any seed, the same chunk.
NOISELESS_POLICIES = {"mip", "regression"}


def assert_repeatable(policy, toy: ToyProblem) -> None:
    """The same seeded generator gives the same chunk; different seeds differ unless deterministic
    (or the policy is noiseless by design, when they must not differ either)."""
    obs = toy.obs[:4]
    for deterministic in (True, False):
        first = policy.predict_chunk(obs, deterministic, torch.Generator().manual_seed(7))
        second = policy.predict_chunk(obs, deterministic, torch.Generator().manual_seed(7))
        torch.testing.assert_close(first, second, rtol=0, atol=0)
    seed_7 = policy.predict_chunk(obs, False, torch.Generator().manual_seed(7))
    seed_8 = policy.predict_chunk(obs, False, torch.Generator().manual_seed(8))
    if policy.plugin_name in NOISELESS_POLICIES:
        torch.testing.assert_close(seed_7, seed_8, rtol=0, atol=0)
    else:
        assert not torch.allclose(seed_7, seed_8), f"policy '{policy.plugin_name}' sampled the same chunk for seeds 7 and 8"


def mean_start_end(losses: list[float], window: int = 10) -> tuple[float, float]:
    return float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
