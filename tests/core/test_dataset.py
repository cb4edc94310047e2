import numpy as np
import pytest
import torch

from robotune.training.samplers import WindowSampler
from robotune.core.dataset import DatasetError, Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes
from robotune.data import load_dataset, save_dataset


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
        concatenate_episodes([episode(4), bad])


def test_shape_mismatch_names_the_field():
    bad = episode(5)
    bad.action = bad.action[:, :1]
    with pytest.raises(DatasetError, match=r"episode 1: 'action' must have shape \(T, 2\)"):
        concatenate_episodes([episode(4), bad])
    short_reward = episode(5)
    short_reward.reward = short_reward.reward[:3]
    with pytest.raises(DatasetError, match=r"episode 0: 'reward' has 3 steps but 'action' has 5"):
        concatenate_episodes([short_reward])


def test_empty_and_too_short_episodes():
    with pytest.raises(DatasetError, match="contains no episodes"):
        concatenate_episodes([])
    with pytest.raises(DatasetError, match="episode 0: is empty"):
        concatenate_episodes([episode(0)])
    with pytest.raises(DatasetError, match="episode 1: has 2 steps, fewer than the 3 required"):
        concatenate_episodes([episode(4), episode(2)], min_length=3)


def test_save_load_round_trip_and_bad_files(tmp_path):
    data = concatenate_episodes([episode(4), episode(6, offset=10)])
    path = tmp_path / "demos.safetensors"
    save_dataset(data, path, metadata={"note": "test"})
    loaded = load_dataset(path)
    assert len(loaded) == 2 and loaded.num_steps == 10
    np.testing.assert_array_equal(loaded.episodes[1].obs, data.episodes[1].obs)
    assert loaded.has_rewards and not loaded.has_final_obs
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(DatasetError, match="junk.safetensors is not a readable safetensors file"):
        load_dataset(tmp_path / "junk.safetensors")


def test_stats_match_numpy():
    data = concatenate_episodes([episode(4), episode(6, offset=10)])
    stats = data.stats()
    assert stats["obs_min"][0] == 0 and stats["obs_max"][0] == 15
    np.testing.assert_allclose(stats["action_mean"], data.action.mean(0))


def test_windows_pad_at_episode_edges():
    # Episode 0 holds values 0..3, episode 1 holds 10..15; each value identifies its step.
    sampler = WindowSampler(concatenate_episodes([episode(4), episode(6, offset=10)]), obs_horizon=2, horizon=3)
    obs = sampler.obs[sampler.obs_index][:, :, 0]  # (N, obs_horizon)
    action = sampler.action[sampler.action_index][:, :, 0]  # (N, horizon)
    assert obs[0].tolist() == [0, 0]  # first step repeats the first observation
    assert obs[4].tolist() == [10, 10]  # never reaches back into the previous episode
    assert obs[5].tolist() == [10, 11]
    assert action[2].tolist() == [2, 3, 3]  # last action repeats at the end
    assert action[3].tolist() == [3, 3, 3]
    assert action[4].tolist() == [10, 11, 12]
    batch = sampler.sample(7, torch.Generator().manual_seed(0))
    assert batch["obs"].shape == (7, 2, 3) and batch["action"].shape == (7, 3, 2)


def test_episode_views_share_the_flat_arrays():
    data = concatenate_episodes([episode(4), episode(6, offset=10)])
    assert data.obs.shape == (10, 3) and data.action.dtype == np.float32
    assert data.episode_ends.tolist() == [4, 10] and data.episode_ends.dtype == np.int64
    view = data.episode(1)
    assert np.shares_memory(view.obs, data.obs) and view.obs[0, 0] == 10
    assert len(data.episodes) == 2 and data.episodes[-1].obs[-1, 0] == 15
    with pytest.raises(IndexError, match="episode 2 out of range"):
        data.episode(2)


def test_absent_optional_fields_take_documented_defaults():
    # Behaviour-cloning data: no reward, no terminal flags, no final observation.
    data = concatenate_episodes([Episode(obs=e.obs, action=e.action) for e in (episode(3), episode(2, offset=10))])
    assert not data.has_rewards and not data.has_final_obs
    assert data.reward.tolist() == [0] * 5 and not data.terminated.any()
    assert data.truncated.tolist() == [False, False, True, False, True]  # cut at each episode's end
    np.testing.assert_array_equal(data.final_obs, data.obs[[2, 4]])  # last observation repeated
    assert data.episode(0).reward is None and data.episode(0).final_obs is None
    # A terminal last step is not also marked truncated.
    terminal = EpisodeDataset(
        obs=data.obs, action=data.action, episode_ends=np.array([3, 5]), terminated=np.array([0, 0, 1, 0, 0], bool)
    )
    assert terminal.truncated.tolist() == [False, False, False, False, True]


def test_final_obs_kept_and_saved(tmp_path):
    eps = [episode(3), episode(2, offset=10)]
    for i, e in enumerate(eps):
        e.final_obs = np.full(3, 100.0 + i, np.float32)
    data = concatenate_episodes(eps)
    assert data.has_final_obs and data.final_obs[:, 0].tolist() == [100, 101]
    save_dataset(data, tmp_path / "d.safetensors")
    loaded = load_dataset(tmp_path / "d.safetensors")
    assert loaded.has_final_obs and loaded.final_obs[:, 0].tolist() == [100, 101]
    eps[1].final_obs = None
    with pytest.raises(DatasetError, match="episode 1: 'final_obs' is absent but not in episode 0"):
        concatenate_episodes(eps)


def test_rewardless_dataset_round_trips_as_rewardless(tmp_path):
    data = concatenate_episodes([Episode(obs=e.obs, action=e.action) for e in (episode(3), episode(2))])
    save_dataset(data, tmp_path / "bc.safetensors", metadata={"generator": "test"})
    loaded = load_dataset(tmp_path / "bc.safetensors")
    assert not loaded.has_rewards and loaded.metadata["generator"] == "test"


def test_flat_arrays_are_validated_against_the_episode_index():
    obs, action = np.zeros((5, 3), np.float32), np.zeros((5, 2), np.float32)
    with pytest.raises(DatasetError, match="'episode_ends' ends at 4 but there are 5 steps"):
        EpisodeDataset(obs, action, np.array([2, 4]))
    with pytest.raises(DatasetError, match="'episode_ends' decreases at episode 1"):
        EpisodeDataset(obs, action, np.array([3, 2, 5]))
    with pytest.raises(DatasetError, match="episode 1: is empty"):
        EpisodeDataset(obs, action, np.array([2, 2, 5]))
    with pytest.raises(DatasetError, match=r"'reward' must have shape \(5,\)"):
        EpisodeDataset(obs, action, np.array([5]), reward=np.zeros(4))
    with pytest.raises(DatasetError, match=r"'final_obs' must have shape \(2, 3\)"):
        EpisodeDataset(obs, action, np.array([2, 5]), final_obs=np.zeros((1, 3)))
    early_end = np.array([0, 1, 0, 0, 0], bool)
    with pytest.raises(DatasetError, match="episode 0: 'terminated' or 'truncated' is set at step 1"):
        EpisodeDataset(obs, action, np.array([3, 5]), terminated=early_end)


def test_read_only_memory_maps_are_adopted_without_copy(tmp_path):
    source = concatenate_episodes([episode(4), episode(6, offset=10)])
    np.save(tmp_path / "obs.npy", source.obs)
    np.save(tmp_path / "action.npy", source.action)
    obs = np.load(tmp_path / "obs.npy", mmap_mode="r")
    data = EpisodeDataset(obs, np.load(tmp_path / "action.npy", mmap_mode="r"), source.episode_ends)
    assert isinstance(data.obs, np.memmap) and not data.obs.flags.writeable
    sampler = WindowSampler(data, obs_horizon=2, horizon=3)
    batch = sampler.sample(5, torch.Generator().manual_seed(0))
    expected = WindowSampler(source, obs_horizon=2, horizon=3).sample(5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(batch["obs"], expected["obs"])
    torch.testing.assert_close(batch["action"], expected["action"])
