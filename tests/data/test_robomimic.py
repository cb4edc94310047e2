"""robomimic files written here with h5py, in robomimic's layout (data/demo_<i>/obs/<key>, mask/<split>)."""

import json

import h5py
import numpy as np
import pytest

from robotune.core.dataset import DatasetError
from robotune.data import detect_format, load_dataset


def write_robomimic(path, lengths=(4, 6, 3), next_obs=True):
    """Three demos named out of numeric order, with an image key that must be skipped."""
    rng = np.random.default_rng(0)
    demos = {}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "env_type": 1, "env_kwargs": {}})
        for number, length in zip((0, 10, 2), lengths):
            demo = data.create_group(f"demo_{number}")
            demo.attrs["num_samples"] = length
            parts = {
                "robot0_eef_pos": rng.normal(size=(length + 1, 3)),
                "object": rng.normal(size=(length + 1, 10)),
                "agentview_image": rng.integers(0, 255, (length + 1, 8, 8, 3), dtype=np.uint8),
            }
            for key, value in parts.items():
                demo.create_dataset(f"obs/{key}", data=value[:-1])
                if next_obs:
                    demo.create_dataset(f"next_obs/{key}", data=value[1:])
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (length, 7)))
            demo.create_dataset("rewards", data=np.r_[np.zeros(length - 2), 1.0, 1.0])
            demo.create_dataset("dones", data=np.r_[np.zeros(length - 2), 1, 1])  # done_mode 2: done twice
            demos[f"demo_{number}"] = (parts, demo["actions"][()])
        f.create_dataset("mask/valid", data=np.array([b"demo_10"]))
    return demos


def test_round_trip_with_named_obs_keys(tmp_path):
    path = tmp_path / "low_dim.hdf5"
    demos = write_robomimic(path)
    assert detect_format(path) == "robomimic"
    data = load_dataset(path, obs_keys=["robot0_eef_pos", "object"])
    assert len(data) == 3 and data.obs_dim == 13 and data.action_dim == 7
    assert data.metadata["episode_names"] == ["demo_0", "demo_2", "demo_10"]  # by number, not as text
    parts, actions = demos["demo_2"]
    ep = data.episode(1)
    np.testing.assert_allclose(ep.obs[:, :3], parts["robot0_eef_pos"][:-1], rtol=1e-6)
    np.testing.assert_allclose(ep.obs[:, 3:], parts["object"][:-1], rtol=1e-6)
    np.testing.assert_allclose(ep.final_obs, np.r_[parts["robot0_eef_pos"][-1], parts["object"][-1]], rtol=1e-6)
    np.testing.assert_allclose(ep.action, actions, rtol=1e-6)
    assert data.has_rewards and data.has_final_obs
    # robomimic's done at the second-to-last step is not a terminal of the recording
    assert ep.terminated.tolist() == [False, False, True] and not ep.truncated.any()
    assert [k["key"] for k in data.metadata["obs_keys"]] == ["robot0_eef_pos", "object"]
    assert data.metadata["env_args"]["env_name"] == "Lift"


def test_default_keys_skip_images_and_filter_key_selects_demos(tmp_path):
    path = tmp_path / "low_dim.hdf5"
    write_robomimic(path, next_obs=False)
    data = load_dataset(path)
    assert [k["key"] for k in data.metadata["obs_keys"]] == ["object", "robot0_eef_pos"]
    assert not data.has_final_obs
    valid = load_dataset(path, filter_key="valid")
    assert len(valid) == 1 and valid.num_steps == 6
    with pytest.raises(DatasetError, match=r"no filter key 'mask/train'; available: \['valid'\]"):
        load_dataset(path, filter_key="train")


def test_malformed_files_name_what_is_wrong(tmp_path):
    path = tmp_path / "low_dim.hdf5"
    write_robomimic(path)
    with pytest.raises(DatasetError, match=r"demo 'demo_0': no observation key 'gripper'; available: \['agentview_image'"):
        load_dataset(path, obs_keys=["robot0_eef_pos", "gripper"])
    with h5py.File(path, "a") as f:
        del f["data/demo_2/actions"]
        f["data/demo_2/actions"] = np.zeros((3, 7))[:2]
    with pytest.raises(DatasetError, match=r"demo 'demo_2': key 'object' has shape \(3, 10\), expected 2 steps"):
        load_dataset(path)
    with h5py.File(path, "a") as f:
        del f["data/demo_2/actions"]
    with pytest.raises(DatasetError, match=r"demo 'demo_2': missing 'actions'"):
        load_dataset(path)
    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f["observations"] = np.zeros((3, 2))
    with pytest.raises(DatasetError, match=r"has no 'data' group \(top-level keys: \['observations'\]\)"):
        load_dataset(tmp_path / "other.hdf5")
