import numpy as np
import pytest
import torch

from robotune.core.dataset import Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes
from robotune.training.samplers import TransitionSampler

GAMMA = 0.5


def dataset() -> EpisodeDataset:
    """Episode 0: 3 steps, truncated, final obs 30. Episode 1: 2 steps, terminated, final obs 99.
    obs[t] = 10 * t (+100 in episode 1), rewards 1, 2, 3 | 4, 5, actions = obs / 10."""
    def episode(obs, rewards, terminated, final):
        obs = np.asarray(obs, np.float32)[:, None]
        n = len(obs)
        return Episode(
            obs=obs, action=obs / 10, reward=np.asarray(rewards, np.float32),
            terminated=np.array([False] * (n - 1) + [terminated]), truncated=np.array([False] * (n - 1) + [not terminated]),
            final_obs=np.asarray([final], np.float32),
        )
    return concatenate_episodes([episode([0, 10, 20], [1, 2, 3], False, 30), episode([100, 110], [4, 5], True, 99)])


def everything(sampler: TransitionSampler) -> dict[str, np.ndarray]:
    """Sample until every step was seen once; return arrays sorted by step."""
    batch = sampler.sample(400, torch.Generator().manual_seed(0), torch.device("cpu"))
    _, first = np.unique(batch["obs"][:, -1].numpy(), return_index=True)
    return {k: v.numpy()[first] for k, v in batch.items()}


def test_one_step_transitions_bootstrap_from_the_final_observation():
    rows = everything(TransitionSampler(dataset(), GAMMA))
    np.testing.assert_array_equal(rows["obs"][:, 0], [0, 10, 20, 100, 110])
    np.testing.assert_array_equal(rows["next_obs"][:, 0], [10, 20, 30, 110, 99])
    np.testing.assert_array_equal(rows["reward"], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(rows["terminated"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(rows["truncated"], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(rows["next_action"][:, 0], [1, 2, 2, 11, 11])
    np.testing.assert_allclose(rows["discount"], GAMMA)


def test_n_step_returns_stop_at_the_episode_end():
    rows = everything(TransitionSampler(dataset(), GAMMA, n_step=2))
    np.testing.assert_allclose(rows["reward"], [1 + GAMMA * 2, 2 + GAMMA * 3, 3, 4 + GAMMA * 5, 5])
    np.testing.assert_allclose(rows["discount"], [GAMMA**2, GAMMA**2, GAMMA, GAMMA**2, GAMMA])
    np.testing.assert_array_equal(rows["next_obs"][:, 0], [20, 30, 30, 99, 99])
    np.testing.assert_array_equal(rows["terminated"], [0, 0, 0, 1, 1])


def test_observation_windows_repeat_the_first_observation_and_end_in_the_final_one():
    rows = everything(TransitionSampler(dataset(), GAMMA, obs_horizon=2))
    np.testing.assert_array_equal(rows["obs"], [[0, 0], [0, 10], [10, 20], [100, 100], [100, 110]])
    np.testing.assert_array_equal(rows["next_obs"], [[0, 10], [10, 20], [20, 30], [100, 110], [110, 99]])


def test_data_without_rewards_is_refused():
    no_rewards = concatenate_episodes([Episode(obs=np.zeros((3, 1), np.float32), action=np.zeros((3, 1), np.float32))])
    with pytest.raises(ValueError, match="has no rewards"):
        TransitionSampler(no_rewards, GAMMA)


def test_an_episode_range_is_a_view_with_its_own_index():
    from robotune.training.samplers import episode_range

    whole = dataset()
    part = episode_range(whole, 1, 2)
    assert len(part) == 1 and part.num_steps == 2 and list(part.episode_ends) == [2]
    np.testing.assert_array_equal(part.obs[:, 0], [100, 110])
    np.testing.assert_array_equal(part.final_obs[:, 0], [99])
    assert np.shares_memory(part.obs, whole.obs)  # views, not copies
    with pytest.raises(ValueError, match=r"episodes \[1, 3\) are not inside"):
        episode_range(dataset(), 1, 3)
