"""A small dataset with every field given, each value telling its episode and step apart."""

from __future__ import annotations

import numpy as np
import pytest

from robotune.core.dataset import Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes


def make_dataset(lengths=(5, 3, 7), obs_dim: int = 4, action_dim: int = 2, seed: int = 0) -> EpisodeDataset:
    rng = np.random.default_rng(seed)
    episodes = []
    for length in lengths:
        terminated = np.zeros(length, bool)
        terminated[-1] = length % 2 == 1  # odd lengths end terminal, even ones truncated
        episodes.append(
            Episode(
                obs=rng.normal(size=(length, obs_dim)).astype(np.float32),
                action=rng.uniform(-1, 1, (length, action_dim)).astype(np.float32),
                reward=rng.normal(size=length).astype(np.float32),
                terminated=terminated,
                truncated=~terminated & (np.arange(length) == length - 1),
                final_obs=rng.normal(size=obs_dim).astype(np.float32),
            )
        )
    return concatenate_episodes(episodes, source="<test>")


def assert_same_episodes(a: EpisodeDataset, b: EpisodeDataset, final_obs: bool = True) -> None:
    np.testing.assert_array_equal(a.episode_ends, b.episode_ends)
    for name in ("obs", "action", "reward", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if final_obs:
        np.testing.assert_array_equal(a.final_obs, b.final_obs)


@pytest.fixture
def dataset() -> EpisodeDataset:
    return make_dataset()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Decompressed stores go to the test's own folder, never to ~/.cache."""
    monkeypatch.setenv("ROBOTUNE_CACHE_DIR", str(tmp_path / "cache"))
