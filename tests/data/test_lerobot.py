"""LeRobotDataset v3 folders written here with pyarrow, in LeRobot's layout and column conventions."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robotune.core.dataset import DatasetError
from robotune.data import detect_format, load_dataset
from robotune.data.lerobot_v3 import write_lerobot

from .conftest import assert_same_episodes


def vectors(value: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(value.reshape(-1)), value.shape[1])


def write_lerobot_by_hand(root, lengths=(3, 5), version="v3.0"):
    """One data file per episode, the later episode in the first file: rows are ordered by 'index'."""
    rng = np.random.default_rng(0)
    steps = sum(lengths)
    frames = {
        "observation.state": rng.normal(size=(steps, 2)).astype(np.float32),
        "observation.environment_state": rng.normal(size=(steps, 4)).astype(np.float32),
        "action": rng.normal(size=(steps, 2)).astype(np.float32),
        "next.reward": rng.normal(size=steps).astype(np.float32),
        "next.done": np.zeros(steps, bool),
        "next.success": np.arange(steps) == 2,  # only the first episode succeeds
        "episode_index": np.repeat(np.arange(len(lengths)), lengths),
        "frame_index": np.concatenate([np.arange(n) for n in lengths]),
        "index": np.arange(steps),
        "timestamp": np.concatenate([np.arange(n) / 10 for n in lengths]).astype(np.float32),
        "task_index": np.zeros(steps, np.int64),
    }
    features = {name: {"dtype": str(v.dtype), "shape": list(v.shape[1:]) or [1], "names": None} for name, v in frames.items()}
    features["observation.image"] = {"dtype": "video", "shape": [96, 96, 3], "names": ["height", "width", "channels"]}
    (root / "meta").mkdir(parents=True)
    info = {"codebase_version": version, "fps": 10, "features": features, "total_episodes": len(lengths)}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    starts = np.cumsum((0, *lengths))
    for number, episode in enumerate(reversed(range(len(lengths)))):
        rows = slice(starts[episode], starts[episode + 1])
        table = pa.table({k: vectors(v[rows]) if v.ndim == 2 else pa.array(v[rows]) for k, v in frames.items()})
        target = root / "data" / "chunk-000" / f"file-{number:03d}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
    episodes = pa.table({"episode_index": np.arange(len(lengths)), "length": np.asarray(lengths)})
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(episodes, root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    return frames


def test_import_default_keys_are_the_numeric_observation_features(tmp_path):
    frames = write_lerobot_by_hand(tmp_path / "pusht")
    assert detect_format(tmp_path / "pusht") == "lerobot"
    data = load_dataset(tmp_path / "pusht")
    assert data.episode_ends.tolist() == [3, 8] and data.obs_dim == 6  # the video is not read
    np.testing.assert_array_equal(data.obs[:, :2], frames["observation.state"])
    np.testing.assert_array_equal(data.obs[:, 2:], frames["observation.environment_state"])
    np.testing.assert_array_equal(data.reward, frames["next.reward"])
    assert data.has_rewards and not data.has_final_obs and data.metadata["fps"] == 10
    assert data.metadata["episode_success"] == [True, False]
    only_state = load_dataset(tmp_path / "pusht", obs_keys=["observation.state"])
    assert only_state.obs_dim == 2


def test_export_then_import(dataset, tmp_path):
    dataset.metadata["obs_names"] = ["a", "b", "c", "d"]
    dataset.metadata["episode_success"] = [False, True, True]
    path = write_lerobot(dataset, tmp_path / "export", fps=50, task="reach")
    back = load_dataset(path)
    assert back.metadata["episode_success"] == [False, True, True]
    assert_same_episodes(dataset, back, final_obs=False)  # LeRobot keeps no final observation
    info = json.loads((path / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 15 and info["total_episodes"] == 3
    assert info["features"]["observation.state"] == {"dtype": "float32", "shape": [4], "names": ["a", "b", "c", "d"]}
    table = pq.read_table(path / "data" / "chunk-000" / "file-000.parquet")
    assert table.column("timestamp").to_pylist()[5:7] == [0.0, pytest.approx(0.02)]  # episode 1 restarts at 0
    episodes = pq.read_table(path / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert episodes.column("dataset_to_index").to_pylist() == [5, 8, 15]
    tasks = pq.read_table(path / "meta" / "tasks.parquet")
    assert tasks.column("task").to_pylist() == ["reach"] and b"pandas" in tasks.schema.metadata
    with pytest.raises(DatasetError, match="already exists"):
        write_lerobot(dataset, path, fps=50)


def test_malformed_datasets_name_what_is_wrong(tmp_path):
    root = tmp_path / "v21"
    write_lerobot_by_hand(root, version="v2.1")
    with pytest.raises(DatasetError, match="is LeRobotDataset v2.1; robotune reads v3.x"):
        load_dataset(root)

    root = tmp_path / "lengths"
    write_lerobot_by_hand(root)
    pq.write_table(
        pa.table({"episode_index": np.arange(2), "length": np.array([3, 6])}),
        root / "meta" / "episodes" / "chunk-000" / "file-000.parquet",
    )
    with pytest.raises(DatasetError, match="episode 1: meta/episodes says 6 frames, data/ holds 5"):
        load_dataset(root)

    root = tmp_path / "frames"
    write_lerobot_by_hand(root)
    episode_1 = root / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(episode_1)
    skipped = pa.array(np.r_[0, 1, 3, 4, 5])
    pq.write_table(table.set_column(table.schema.get_field_index("frame_index"), "frame_index", skipped), episode_1)
    with pytest.raises(DatasetError, match="episode 1: frame_index is 3 at its row 2, expected 2"):
        load_dataset(root)

    root = tmp_path / "no_action"
    write_lerobot_by_hand(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    del info["features"]["action"]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="meta/info.json lists no feature 'action'"):
        load_dataset(root)
    shutil.rmtree(root / "data")
    with pytest.raises(DatasetError, match="no data/chunk-\\*/file-\\*.parquet files"):
        load_dataset(root, action_key="next.reward")
