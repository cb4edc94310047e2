"""Observation keys mapped by name: which named arrays, in which order, make the flat observation.

Foreign formats store observations as several named arrays (robomimic's `obs/robot0_eef_pos`,
diffusion_policy's `data/state`, LeRobot's `observation.state`). An importer is told which keys make
the observation, e.g. `obs_keys=["robot0_eef_pos", "object"]`; each key's per-step array is flattened
and the keys are concatenated in the order given. A key may take a column range of its flattened
array, `state[0:2]`, as diffusion_policy's PushT uses the agent position out of `state`. The key
grammar and lookup are `robotune.processing.keys`, shared with the observation processors.

The layout is recorded in the dataset's metadata (`obs_keys`), so `robotune data info` and a task
can tell which observation columns came from which key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robotune.core.dataset import DatasetError
from robotune.processing.keys import resolve_key


def as_key_list(keys: str | Sequence[str] | None) -> list[str] | None:
    """Keys given as a list, or as one comma-separated string (as typed on a command line)."""
    if keys is None:
        return None
    if isinstance(keys, str):
        keys = keys.split(",")
    out = [str(k).strip() for k in keys if str(k).strip()]
    return out or None


def concatenate_keys(
    arrays: Mapping[str, Any], keys: Sequence[str], steps: int, where: str
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(steps, obs_dim) float32 from the named arrays, and the layout for the metadata.

    `arrays` maps names to array-likes of `steps` rows (an h5py or zarr group works). `where` names
    the file and episode for errors.
    """
    columns, layout, offset = [], [], 0
    for text in keys:
        key = resolve_key(text, arrays, where, DatasetError)
        value = np.asarray(arrays[key.name])
        if value.ndim == 0 or len(value) != steps:
            raise DatasetError(f"{where}: key '{key.name}' has shape {value.shape}, expected {steps} steps first")
        flat = value.reshape(steps, -1)[:, key.start : key.stop]
        if flat.shape[1] == 0:
            raise DatasetError(f"{where}: key '{key}' selects no columns of shape {value.shape[1:]}")
        if not np.issubdtype(flat.dtype, np.number) and flat.dtype != bool:
            raise DatasetError(f"{where}: key '{key.name}' holds {flat.dtype}, not numbers")
        columns.append(flat.astype(np.float32))
        layout.append({"key": str(key), "shape": list(value.shape[1:]), "columns": [offset, offset + flat.shape[1]]})
        offset += flat.shape[1]
    return np.concatenate(columns, axis=1), layout


def low_dim_keys(arrays: Mapping[str, Any]) -> list[str]:
    """Keys whose steps are scalars or vectors (not images), in the order the container lists them."""
    return [name for name in arrays if 1 <= len(arrays[name].shape) <= 2 and arrays[name].dtype != np.uint8]
