"""Import robomimic HDF5 datasets (low-dimensional observations).

Layout (robomimic's `docs/datasets/overview.md`):

    data/                       attrs: total, env_args (JSON)
      demo_<i>/                 attrs: num_samples
        actions  (T, A)   rewards (T,)   dones (T,)   states (T, S)
        obs/<key>       (T, ...)   observation parts: robot0_eef_pos, object, images, ...
        next_obs/<key>  (T, ...)   the observation after each action
    mask/<filter_key>           names of the demos in a split ("train", "valid", quality subsets)

Mapping: the observation concatenates `obs_keys` (default: every low-dimensional key of the first
demo, in alphabetical order as HDF5 lists them; images are skipped). `final_obs` is `next_obs` at the last step when the
file has it. robomimic writes `dones` = 1 wherever the task is done (with done_mode 0 or 2 that can be
several steps before the recording ends), so only the last step's `done` is taken: terminated there,
truncated otherwise. Demos are ordered by their number (demo_2 before demo_10).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from robotune.core.dataset import DatasetError, Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes
from robotune.data.keys import concatenate_keys, low_dim_keys
from robotune.data.store import provenance


def read_robomimic(
    path: str | Path,
    obs_keys: list[str] | None = None,
    action_key: str = "actions",
    filter_key: str | None = None,
    min_length: int = 1,
) -> EpisodeDataset:
    """Read a robomimic file; `filter_key` keeps only the demos listed under `mask/<filter_key>`."""
    path = Path(path)
    where = f"robomimic file {path}"
    try:
        file = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{where} is not a readable HDF5 file: {exc}") from exc
    with file:
        if "data" not in file:
            raise DatasetError(f"{where} has no 'data' group (top-level keys: {sorted(file)})")
        data = file["data"]
        names = sorted(data, key=_demo_number)
        if filter_key is not None:
            if f"mask/{filter_key}" not in file:
                masks = sorted(file["mask"]) if "mask" in file else []
                raise DatasetError(f"{where} has no filter key 'mask/{filter_key}'; available: {masks}")
            listed = {n.decode() if isinstance(n, bytes) else str(n) for n in file[f"mask/{filter_key}"][()]}
            names = [n for n in names if n in listed]
        if not names:
            raise DatasetError(f"{where} holds no demos" + (f" under filter key '{filter_key}'" if filter_key else ""))
        if "obs" not in data[names[0]]:
            raise DatasetError(f"{where}, demo '{names[0]}': no 'obs' group")
        keys = obs_keys or low_dim_keys(data[names[0]]["obs"])
        episodes, layout = [], []
        for name in names:
            demo, at = data[name], f"{where}, demo '{name}'"
            for field in ("obs", action_key):
                if field not in demo:
                    raise DatasetError(f"{at}: missing '{field}' (has {sorted(demo)})")
            action = np.asarray(demo[action_key], dtype=np.float32)
            if action.ndim != 2:
                raise DatasetError(f"{at}: '{action_key}' must have shape (T, action_dim), got {action.shape}")
            steps = len(action)
            obs, layout = concatenate_keys(demo["obs"], keys, steps, at)
            final_obs = None
            if "next_obs" in demo:
                final_obs = concatenate_keys(demo["next_obs"], keys, steps, f"{at}, next_obs")[0][-1]
            reward = _steps(demo, "rewards", steps, at)
            done = _steps(demo, "dones", steps, at)
            terminated = truncated = None
            if done is not None:
                terminated = np.zeros(steps, bool)
                terminated[-1] = bool(done[-1])
                truncated = np.zeros(steps, bool)
                truncated[-1] = not terminated[-1]
            episodes.append(Episode(obs, action, reward, terminated, truncated, final_obs))
        env_args = json.loads(data.attrs["env_args"]) if "env_args" in data.attrs else None
    metadata = {
        "provenance": provenance("robotune.data.robomimic_hdf5", path, filter_key=filter_key),
        "source_format": "robomimic",
        "obs_keys": layout,
        "action_key": action_key,
        "episode_names": names,
        "env_args": env_args,
    }
    return concatenate_episodes(episodes, source=str(path), min_length=min_length, metadata=metadata)


def _steps(demo: h5py.Group, name: str, steps: int, where: str) -> np.ndarray | None:
    """The per-step array `name`, or None when the demo lacks it."""
    if name not in demo:
        return None
    value = np.asarray(demo[name])
    if value.shape != (steps,):
        raise DatasetError(f"{where}: '{name}' has shape {value.shape}, expected ({steps},)")
    return value.astype(np.float32)


def _demo_number(name: str) -> tuple[int, str]:
    suffix = name.rsplit("_", 1)[-1]
    return (int(suffix), name) if suffix.isdigit() else (1 << 62, name)
