"""Import and export LeRobotDataset v3 (Hugging Face LeRobot's format), low-dimensional features.

Layout (LeRobot `CODEBASE_VERSION = "v3.0"`):

    meta/info.json                          codebase_version, fps, features {name: dtype, shape, names}, ...
    meta/stats.json                         per-feature min, max, mean, std, count
    meta/tasks.parquet                      task strings (the pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet  one row per episode: length, data file, from/to index
    data/chunk-000/file-000.parquet         the frames of many episodes, one row per step, with the
                                            columns episode_index, frame_index, index, timestamp, task_index

Mapping: the observation concatenates `obs_keys` (default: every numeric `observation.*` feature in
info.json's order; images and videos are not read). `next.reward` is the reward, and `next.success`,
where a dataset has it, gives each episode's success (any of its frames; robotune's exports set it
on a successful episode's last frame). LeRobot's
`next.done` marks where an episode ends without saying whether it was terminal, so it is not read;
robotune's exports add `next.terminated` and `next.truncated`, which are. LeRobot keeps no final
observation, so imports have `has_final_obs` False. Only pyarrow is used: no lerobot, datasets or
pandas install, and no hub access.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robotune.core.dataset import DatasetError, EpisodeDataset
from robotune.data.keys import concatenate_keys
from robotune.data.store import provenance

CODEBASE_VERSION = "v3.0"
FILES_PER_CHUNK = 1000  # LeRobot's DEFAULT_CHUNK_SIZE
DATA_FILE_MB = 100  # LeRobot's DEFAULT_DATA_FILE_SIZE_IN_MB: a new data file starts past this size
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def read_lerobot(
    path: str | Path, obs_keys: list[str] | None = None, action_key: str = "action", min_length: int = 1
) -> EpisodeDataset:
    path = Path(path)
    where = f"LeRobot dataset {path}"
    info_path = path / "meta" / "info.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{where}: cannot read meta/info.json: {exc}") from exc
    version = str(info.get("codebase_version", "?"))
    if not version.startswith("v3"):
        raise DatasetError(
            f"{where} is LeRobotDataset {version}; robotune reads v3.x (convert it with LeRobot's v2.1 to v3.0 converter)"
        )
    features = info.get("features", {})
    if obs_keys is None:
        obs_keys = [k for k, ft in features.items() if k.startswith("observation.") and ft.get("dtype") not in ("image", "video", "string")]
    for key in (action_key, "episode_index", "frame_index", "index"):
        if key not in features:
            raise DatasetError(f"{where}: meta/info.json lists no feature '{key}' (features: {sorted(features)})")
    files = sorted((path / "data").glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{where}: no data/chunk-*/file-*.parquet files")
    optional = [c for c in ("next.reward", "next.terminated", "next.truncated", "next.success") if c in features]
    names = {k.split("[")[0] for k in obs_keys} | {action_key, "episode_index", "frame_index", "index", *optional}
    try:
        table = pa.concat_tables([pq.read_table(f, columns=sorted(names)) for f in files])
    except (pa.ArrowInvalid, KeyError) as exc:
        raise DatasetError(f"{where}: cannot read the columns {sorted(names)} from data/: {exc}") from exc
    order = np.argsort(table.column("index").to_numpy(), kind="stable")
    columns = {name: _column(table.column(name))[order] for name in table.column_names}

    episode_index = columns["episode_index"]
    starts = np.flatnonzero(np.diff(episode_index, prepend=episode_index[0] - 1))
    ends = np.append(starts[1:], len(episode_index))
    ids = episode_index[starts]
    unique_ids, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = int(unique_ids[counts > 1][0])
        raise DatasetError(f"{where}: episode {repeated} appears in two separate runs of rows; 'index' is not ordered by episode")
    for episode, start, end in zip(ids, starts, ends):
        frames = columns["frame_index"][start:end]
        if not np.array_equal(frames, np.arange(end - start)):
            bad = int(np.argmax(frames != np.arange(end - start)))
            raise DatasetError(f"{where}, episode {episode}: frame_index is {frames[bad]} at its row {bad}, expected {bad}")
    _check_episode_lengths(path, dict(zip(ids.tolist(), (ends - starts).tolist())), where)

    for key in obs_keys:
        name = key.split("[")[0]
        expected = features.get(name, {}).get("shape")
        if expected is not None and name in columns and list(columns[name].shape[1:]) != [int(np.prod(expected))]:
            raise DatasetError(f"{where}: '{name}' has {columns[name].shape[1:]} values per frame, meta/info.json says {expected}")
    obs, layout = concatenate_keys(columns, obs_keys, len(order), where)
    flags = {name: columns[f"next.{name}"].astype(bool) for name in ("terminated", "truncated") if f"next.{name}" in columns}
    metadata = {
        "provenance": provenance("robotune.data.lerobot_v3", path, codebase_version=version),
        "source_format": "lerobot",
        "obs_keys": layout,
        "action_key": action_key,
        "fps": info.get("fps"),
        "robot_type": info.get("robot_type"),
    }
    if "next.success" in columns:  # an episode succeeded if any of its frames says so
        metadata["episode_success"] = np.logical_or.reduceat(columns["next.success"].astype(bool).reshape(-1), starts).tolist()
    return EpisodeDataset(
        obs=obs,
        action=columns[action_key].reshape(len(order), -1),
        episode_ends=ends.astype(np.int64),
        reward=columns["next.reward"].reshape(-1) if "next.reward" in columns else None,
        terminated=flags.get("terminated"),
        truncated=flags.get("truncated"),
        source=str(path),
        min_length=min_length,
        metadata=metadata,
    )


def write_lerobot(
    dataset: EpisodeDataset,
    path: str | Path,
    fps: float | None = None,
    task: str = "",
    robot_type: str | None = None,
) -> Path:
    """Write `dataset` as a LeRobotDataset v3 folder at `path` (which must not exist yet).

    fps: frames per second, for timestamps (default: the dataset's `fps` metadata). task: the task
    string LeRobot attaches to every frame. Observations become `observation.state`, with the
    dataset's `obs_names` metadata as feature names when it has them.
    """
    path = Path(path)
    if path.exists():
        raise DatasetError(f"{path} already exists; the LeRobot export writes a new folder")
    fps = fps or dataset.metadata.get("fps")
    if not fps:
        raise DatasetError(f"dataset {dataset.source} records no fps; give the frame rate for LeRobot's timestamps")
    num_steps, num_episodes = dataset.num_steps, len(dataset)
    lengths = dataset.episode_ends - dataset.episode_starts
    frame_index = np.arange(num_steps) - np.repeat(dataset.episode_starts, lengths)
    frames = {
        "observation.state": np.asarray(dataset.obs),
        "action": np.asarray(dataset.action),
        "next.reward": np.asarray(dataset.reward),
        "next.done": np.asarray(dataset.terminated | dataset.truncated),
        "next.terminated": np.asarray(dataset.terminated),
        "next.truncated": np.asarray(dataset.truncated),
        "timestamp": (frame_index / fps).astype(np.float32),
        "frame_index": frame_index.astype(np.int64),
        "episode_index": np.repeat(np.arange(num_episodes, dtype=np.int64), lengths),
        "index": np.arange(num_steps, dtype=np.int64),
        "task_index": np.zeros(num_steps, np.int64),
    }
    if "episode_success" in dataset.metadata:  # marked on each successful episode's last frame
        success = np.zeros(num_steps, bool)
        success[dataset.episode_ends - 1] = np.asarray(dataset.metadata["episode_success"], bool)
        frames["next.success"] = success
    obs_names = dataset.metadata.get("obs_names")
    features = {
        name: {
            "dtype": str(value.dtype) if value.dtype != np.bool_ else "bool",
            "shape": list(value.shape[1:]) or [1],
            "names": (obs_names if name == "observation.state" else None),
        }
        for name, value in frames.items()
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent if path.parent.exists() else None))
    try:
        file_of_episode = _write_data_files(tmp, frames, dataset)
        _write_meta(tmp, dataset, file_of_episode, frames, features, fps, task, robot_type)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp), path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write_data_files(root: Path, frames: dict[str, np.ndarray], dataset: EpisodeDataset) -> np.ndarray:
    """Episodes packed into data files of about DATA_FILE_MB; returns each episode's file number."""
    bytes_per_step = sum(v.nbytes for v in frames.values()) / dataset.num_steps
    steps_per_file = max(1, int(DATA_FILE_MB * 2**20 / bytes_per_step))
    file_of_episode = (dataset.episode_starts // steps_per_file).astype(np.int64)
    for file_number in np.unique(file_of_episode):
        episodes = np.flatnonzero(file_of_episode == file_number)
        rows = slice(int(dataset.episode_starts[episodes[0]]), int(dataset.episode_ends[episodes[-1]]))
        table = pa.table({name: _arrow(value[rows]) for name, value in frames.items()})
        target = root / DATA_PATH.format(chunk_index=file_number // FILES_PER_CHUNK, file_index=file_number % FILES_PER_CHUNK)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
    return file_of_episode


def _write_meta(
    root: Path,
    dataset: EpisodeDataset,
    file_of_episode: np.ndarray,
    frames: dict[str, np.ndarray],
    features: dict[str, Any],
    fps: float,
    task: str,
    robot_type: str | None,
) -> None:
    meta = root / "meta"
    episodes_file = meta / EPISODES_PATH.removeprefix("meta/").format(chunk_index=0, file_index=0)
    episodes_file.parent.mkdir(parents=True)
    num_episodes = len(dataset)
    pq.write_table(
        pa.table(
            {
                "episode_index": np.arange(num_episodes, dtype=np.int64),
                "tasks": pa.array([[task]] * num_episodes, pa.list_(pa.string())),
                "length": (dataset.episode_ends - dataset.episode_starts).astype(np.int64),
                "data/chunk_index": file_of_episode // FILES_PER_CHUNK,
                "data/file_index": file_of_episode % FILES_PER_CHUNK,
                "dataset_from_index": dataset.episode_starts,
                "dataset_to_index": dataset.episode_ends,
                "meta/episodes/chunk_index": np.zeros(num_episodes, np.int64),
                "meta/episodes/file_index": np.zeros(num_episodes, np.int64),
            }
        ),
        episodes_file,
    )
    # pandas metadata makes pandas.read_parquet (which LeRobot uses) restore the task strings as the index
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
    }
    tasks = pa.table({"task_index": pa.array([0], pa.int64()), "task": pa.array([task])})
    pq.write_table(tasks.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), meta / "tasks.parquet")
    stats = {
        name: {
            "min": value.min(0).tolist(),
            "max": value.max(0).tolist(),
            "mean": value.mean(0).tolist(),
            "std": value.std(0).tolist(),
            "count": [len(value)],
        }
        for name, value in frames.items()
        if name in ("observation.state", "action", "next.reward")
    }
    (meta / "stats.json").write_text(json.dumps(stats, indent=2))
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": num_episodes,
        "total_frames": dataset.num_steps,
        "total_tasks": 1,
        "chunks_size": FILES_PER_CHUNK,
        "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": 500,
        "fps": fps,
        "splits": {"train": f"0:{num_episodes}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": features,
        "robotune_provenance": dataset.metadata.get("provenance", {"source": dataset.source}),
    }
    (meta / "info.json").write_text(json.dumps(info, indent=2))


def _arrow(value: np.ndarray) -> pa.Array:
    """A per-frame column: scalars as values, vectors as fixed-size lists (LeRobot's Sequence(length))."""
    if value.ndim == 1:
        return pa.array(value)
    flat = pa.array(np.ascontiguousarray(value).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, value.shape[1])


def _column(column: pa.ChunkedArray) -> np.ndarray:
    """(rows,) for a scalar column, (rows, width) for a list column."""
    array = column.combine_chunks()
    if pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type) or pa.types.is_large_list(array.type):
        flat = array.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(array), -1) if len(array) else flat.reshape(0, 0)
    return array.to_numpy(zero_copy_only=False)


def _check_episode_lengths(path: Path, lengths: dict[int, int], where: str) -> None:
    """Cross-check the frames against meta/episodes when the dataset has it."""
    files = sorted((path / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        return
    table = pa.concat_tables([pq.read_table(f, columns=["episode_index", "length"]) for f in files])
    for episode, length in zip(table.column("episode_index").to_pylist(), table.column("length").to_pylist()):
        if episode not in lengths:
            raise DatasetError(f"{where}, episode {episode}: listed in meta/episodes but has no frames in data/")
        if lengths[episode] != length:
            raise DatasetError(f"{where}, episode {episode}: meta/episodes says {length} frames, data/ holds {lengths[episode]}")
