"""Import diffusion_policy's zarr ReplayBuffer (PushT, Block Push, Kitchen, and data recorded with it).

Layout (diffusion_policy's `common/replay_buffer.py`, zarr format 2 in its releases):

    data/<key>          (N, ...)  all episodes concatenated: action, state, keypoint, obs, img, ...
    meta/episode_ends   (E,)      cumulative ends, as robotune's own index

A folder (`*.zarr`) or a zip of one (`*.zarr.zip`, read in place).

Mapping: the observation concatenates `obs_keys` (default: `obs` when the store has it, as Block
Push and Kitchen do, else `state`, as PushT does). Releases carry no rewards, terminal flags or final
observations, so episodes end truncated with `has_rewards` and `has_final_obs` False; `reward_key`
names a per-step reward array when a store does have one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from robotune.core.dataset import DatasetError, EpisodeDataset
from robotune.data.keys import concatenate_keys
from robotune.data.store import provenance

DEFAULT_OBS_KEYS = (["obs"], ["state"])


def read_diffusion_policy(
    path: str | Path,
    obs_keys: list[str] | None = None,
    action_key: str = "action",
    reward_key: str | None = None,
    min_length: int = 1,
) -> EpisodeDataset:
    path = Path(path)
    where = f"diffusion_policy store {path}"
    try:
        store = zarr.storage.ZipStore(str(path), mode="r") if path.suffix == ".zip" else str(path)
        root = zarr.open_group(store, mode="r")
    except Exception as exc:  # zarr raises several types for a folder or zip that is not a store
        raise DatasetError(f"{where} is not a readable zarr store: {exc}") from exc
    for group in ("data", "meta"):
        if group not in root:
            raise DatasetError(f"{where}: missing the '{group}' group (has {sorted(root)})")
    data, meta = root["data"], root["meta"]
    if "episode_ends" not in meta:
        raise DatasetError(f"{where}: missing 'meta/episode_ends' (meta has {sorted(meta)})")
    available = sorted(data.array_keys())
    if action_key not in available:
        raise DatasetError(f"{where}: no action array 'data/{action_key}'; available: {available}")
    if obs_keys is None:
        obs_keys = next((keys for keys in DEFAULT_OBS_KEYS if keys[0] in available), None)
        if obs_keys is None:
            raise DatasetError(f"{where}: no 'data/obs' or 'data/state'; name the observation with obs_keys from {available}")
    action = np.asarray(data[action_key][...], dtype=np.float32)
    if action.ndim == 1:
        action = action[:, None]
    if action.ndim != 2:
        raise DatasetError(f"{where}: 'data/{action_key}' must have shape (N, action_dim), got {action.shape}")
    arrays = {name: data[name] for name in available}
    obs, layout = concatenate_keys(arrays, obs_keys, len(action), where)
    reward = None
    if reward_key is not None:
        if reward_key not in available:
            raise DatasetError(f"{where}: no reward array 'data/{reward_key}'; available: {available}")
        reward = np.asarray(data[reward_key][...], dtype=np.float32)
        if reward.ndim == 2 and reward.shape[1] == 1:
            reward = reward[:, 0]
    metadata = {
        "provenance": provenance("robotune.data.diffusion_policy_zarr", path),
        "source_format": "diffusion_policy",
        "obs_keys": layout,
        "action_key": action_key,
    }
    return EpisodeDataset(
        obs=obs,
        action=action,
        episode_ends=np.asarray(meta["episode_ends"][...]),
        reward=reward,
        source=str(path),
        min_length=min_length,
        metadata=metadata,
    )
