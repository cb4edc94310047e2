"""Minari datasets written here with minari's own create_dataset_from_buffers (no jax needed)."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from minari import create_dataset_from_buffers, get_normalized_score
from minari import load_dataset as minari_load_dataset
from minari.data_collector import EpisodeBuffer

from robotune.core.dataset import DatasetError
from robotune.data import detect_format, load_dataset
from robotune.data.minari_dataset import write_minari

from .conftest import assert_same_episodes


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def create(dataset_id, observations, observation_space, lengths=(4, 6)):
    rng = np.random.default_rng(0)
    buffers = []
    for i, length in enumerate(lengths):
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=observations(length + 1),
                actions=rng.uniform(-1, 1, (length, 2)).astype(np.float32),
                rewards=rng.normal(size=length).tolist(),
                terminations=[False] * (length - 1) + [i == 0],
                truncations=[False] * (length - 1) + [i != 0],
                infos={},
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=observation_space,
            action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
            ref_min_score=None,
        )
    return buffers


def test_box_observations_keep_their_final_observation(minari_root):
    rng = np.random.default_rng(1)
    buffers = create("test/box-v0", lambda n: rng.normal(size=(n, 3)).astype(np.float32), gym.spaces.Box(-np.inf, np.inf, (3,), np.float32))
    folder = minari_root / "test" / "box-v0"
    assert detect_format(folder) == "minari"
    data = load_dataset(folder)
    assert data.episode_ends.tolist() == [4, 10] and data.has_final_obs and data.has_rewards
    np.testing.assert_array_equal(data.episode(1).obs, buffers[1].observations[:-1])
    np.testing.assert_array_equal(data.final_obs[1], buffers[1].observations[-1])
    np.testing.assert_allclose(data.reward[:4], buffers[0].rewards, rtol=1e-6)
    assert data.terminated.tolist()[3] and data.truncated.tolist()[9]
    assert data.metadata["provenance"]["dataset_id"] == "test/box-v0"


def test_dict_observations_are_mapped_by_key(minari_root):
    rng = np.random.default_rng(2)
    space = gym.spaces.Dict(
        {"observation": gym.spaces.Box(-np.inf, np.inf, (4,)), "desired_goal": gym.spaces.Box(-np.inf, np.inf, (2,))}
    )
    buffers = create("test/dict-v0", lambda n: {"observation": rng.normal(size=(n, 4)), "desired_goal": rng.normal(size=(n, 2))}, space)
    data = load_dataset(minari_root / "test" / "dict-v0", obs_keys=["observation", "desired_goal"])
    assert data.obs_dim == 6
    np.testing.assert_allclose(data.episode(0).obs[:, 4:], buffers[0].observations["desired_goal"][:-1], rtol=1e-6)
    with pytest.raises(DatasetError, match=r"episode 0 \(id 0\): no observation key 'achieved_goal'"):
        load_dataset(minari_root / "test" / "dict-v0", obs_keys=["observation", "achieved_goal"])


def test_export_then_import(dataset, minari_root):
    dataset.metadata["reference_returns"] = {"random": -5.0, "expert": 5.0}
    folder = write_minari(dataset, "robotune/exported-v0")
    assert folder == minari_root / "robotune" / "exported-v0"
    back = load_dataset(folder)
    assert_same_episodes(dataset, back)
    assert back.metadata["reference_returns"]["expert"] == 5.0
    # minari itself reads the export, normalised score included
    exported = minari_load_dataset("robotune/exported-v0")
    assert exported.total_steps == dataset.num_steps
    assert get_normalized_score(exported, np.array([0.0])) == pytest.approx(0.5)
    with pytest.raises(DatasetError, match="Minari refused to write 'robotune/exported-v0'.*already exists"):
        write_minari(dataset, "robotune/exported-v0")


def test_broken_folder_is_named(minari_root):
    folder = minari_root / "test" / "broken-v0" / "data"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text('{"minari_version": "0.5.4", "data_format": "hdf5"}')
    with pytest.raises(DatasetError, match=r"Minari dataset .*broken-v0 cannot be read by minari"):
        load_dataset(folder.parent)
