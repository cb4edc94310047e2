import numpy as np
import pytest
import torch

from robotune.core.dataset import DatasetError, Episode, EpisodeDataset


def episode(length: int, obs_dim: int = 3, action_dim: int = 2, offset: float = 0.0) -> Episode:
    t = np.arange(length, dtype=np.float32)
    return Episode(
        obs=np.stack([t + offset] * obs_dim, axis=1),
        action=np.stack([t + offset] * action_dim, axis=1),
        reward=np.zeros(length, np.float32),
        terminated=np.zeros(length, bool),
        truncated=np.zeros(length, bool),
    )


def test_nan_is_reported_with_episode_field_and_step():
    bad = episode(5)
    bad.obs[3, 1] = np.nan
    with pytest.raises(DatasetError, match=r"episode 1: 'obs' has a NaN or infinite value at step 3"):
        EpisodeDataset([episode(4), bad])


def test_shape_mismatch_names_the_field():
    bad = episode(5)
    bad.action = bad.action[:, :1]
    with pytest.raises(DatasetError, match=r"episode 1: 'action' must have shape \(T, 2\)"):
        EpisodeDataset([episode(4), bad])
    short_reward = episode(5)
    short_reward.reward = short_reward.reward[:3]
    with pytest.raises(DatasetError, match=r"episode 0: 'reward' has 3 steps but 'action' has 5"):
        EpisodeDataset([short_reward])


def test_empty_and_too_short_episodes():
    with pytest.raises(DatasetError, match="contains no episodes"):
        EpisodeDataset([])
    with pytest.raises(DatasetError, match="episode 0: is empty"):
        EpisodeDataset([episode(0)])
    with pytest.raises(DatasetError, match="episode 1: has 2 steps, fewer than the 3 required"):
        EpisodeDataset([episode(4), episode(2)], min_length=3)


def test_save_load_round_trip_and_bad_files(tmp_path):
    data = EpisodeDataset([episode(4), episode(6, offset=10)])
    path = tmp_path / "demos.safetensors"
    data.save(path, metadata={"note": "test"})
    loaded = EpisodeDataset.load(path)
    assert len(loaded) == 2 and loaded.num_steps == 10
    np.testing.assert_array_equal(loaded.episodes[1].obs, data.episodes[1].obs)
    with pytest.raises(DatasetError, match="does not exist"):
        EpisodeDataset.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(DatasetError, match="junk.safetensors is not a readable safetensors file"):
        EpisodeDataset.load(tmp_path / "junk.safetensors")


def test_stats_match_numpy():
    data = EpisodeDataset([episode(4), episode(6, offset=10)])
    stats = data.stats()
    assert stats["obs_min"][0] == 0 and stats["obs_max"][0] == 15
    np.testing.assert_allclose(stats["action_mean"], data.action.mean(0))


def test_windows_pad_at_episode_edges():
    # Episode 0 holds values 0..3, episode 1 holds 10..15; each value identifies its step.
    sampler = EpisodeDataset([episode(4), episode(6, offset=10)]).window_sampler(obs_horizon=2, horizon=3)
    obs = sampler.obs[sampler.obs_index][:, :, 0]
    action = sampler.action[sampler.action_index][:, :, 0]
    assert obs[0].tolist() == [0, 0]  # first step repeats the first observation
    assert obs[4].tolist() == [10, 10]  # never reaches back into the previous episode
    assert obs[5].tolist() == [10, 11]
    assert action[2].tolist() == [2, 3, 3]  # last action repeats at the end
    assert action[3].tolist() == [3, 3, 3]
    assert action[4].tolist() == [10, 11, 12]
    batch = sampler.sample(7, torch.Generator().manual_seed(0))
    assert batch["obs"].shape == (7, 2, 3) and batch["action"].shape == (7, 3, 2)
