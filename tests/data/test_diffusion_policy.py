"""diffusion_policy replay buffers written here with zarr (format 2, as its PushT release is)."""

import shutil

import numpy as np
import pytest
import zarr

from robotune.core.dataset import DatasetError
from robotune.data import detect_format, load_dataset


def write_replay_buffer(path, episode_ends=(3, 8, 12), zip_it=False):
    """PushT's arrays: state (agent xy + block pose), keypoint (9, 2), action (agent target xy)."""
    rng = np.random.default_rng(0)
    steps = episode_ends[-1]
    arrays = {
        "state": rng.normal(size=(steps, 5)).astype(np.float32),
        "keypoint": rng.normal(size=(steps, 9, 2)).astype(np.float32),
        "action": rng.normal(size=(steps, 2)).astype(np.float32),
    }
    store = zarr.storage.ZipStore(str(path), mode="w") if zip_it else str(path)
    root = zarr.open_group(store, mode="w", zarr_format=2)
    for name, value in arrays.items():
        root.create_array(f"data/{name}", data=value, chunks=(4, *value.shape[1:]))
    root.create_array("meta/episode_ends", data=np.asarray(episode_ends, dtype=np.int64))
    if zip_it:
        store.close()
    return arrays


def test_round_trip_default_and_named_keys(tmp_path):
    path = tmp_path / "pusht.zarr"
    arrays = write_replay_buffer(path)
    assert detect_format(path) == "diffusion_policy"
    data = load_dataset(path)
    assert data.episode_ends.tolist() == [3, 8, 12] and data.obs_dim == 5
    np.testing.assert_array_equal(data.obs, arrays["state"])
    np.testing.assert_array_equal(data.action, arrays["action"])
    assert not data.has_rewards and not data.has_final_obs
    # PushT's low-dim observation: keypoints flattened, then the agent position out of state.
    keyed = load_dataset(path, obs_keys="keypoint,state[0:2]")
    assert keyed.obs_dim == 20
    np.testing.assert_array_equal(keyed.obs[:, :18], arrays["keypoint"].reshape(12, 18))
    np.testing.assert_array_equal(keyed.obs[:, 18:], arrays["state"][:, :2])
    assert keyed.metadata["obs_keys"][1] == {"key": "state[0:2]", "shape": [5], "columns": [18, 20]}


def test_zipped_store_reads_in_place(tmp_path):
    path = tmp_path / "pusht.zarr.zip"
    arrays = write_replay_buffer(path, zip_it=True)
    assert detect_format(path) == "diffusion_policy"
    np.testing.assert_array_equal(load_dataset(path).action, arrays["action"])


def test_malformed_stores_name_what_is_wrong(tmp_path):
    path = tmp_path / "bad_index.zarr"
    write_replay_buffer(path, episode_ends=(3, 8, 12))
    zarr.open_group(str(path), mode="a")["meta/episode_ends"][:] = [3, 9, 14]
    with pytest.raises(DatasetError, match="'episode_ends' ends at 14 but there are 12 steps"):
        load_dataset(path)
    zarr.open_group(str(path), mode="a")["meta/episode_ends"][:] = [3, 3, 12]
    with pytest.raises(DatasetError, match="episode 1: is empty"):
        load_dataset(path)

    path = tmp_path / "no_index.zarr"
    write_replay_buffer(path)
    shutil.rmtree(path / "meta" / "episode_ends")
    with pytest.raises(DatasetError, match=r"missing 'meta/episode_ends'"):
        load_dataset(path, format="diffusion_policy")

    path = tmp_path / "no_state.zarr"
    write_replay_buffer(path)
    with pytest.raises(DatasetError, match=r"no action array 'data/act'; available: \['action', 'keypoint', 'state'\]"):
        load_dataset(path, action_key="act")
    with pytest.raises(DatasetError, match=r"key 'state\[7:9\]' selects no columns of shape \(5,\)"):
        load_dataset(path, obs_keys=["state[7:9]"])
