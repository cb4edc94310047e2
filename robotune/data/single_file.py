"""The single-file dataset format: the flat episode arrays in one safetensors file.

For small datasets, such as the cached expert demonstrations: one file, no chunking, read whole into
memory. JSON metadata (provenance, `has_rewards`) lives in the safetensors header. No pickle.
Files written before `final_obs` and `has_rewards` existed still load: they always held rewards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from robotune.core.dataset import STEP_FIELDS, DatasetError, EpisodeDataset


def write_single_file(dataset: EpisodeDataset, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write atomically through a temporary file; `metadata` is merged over the dataset's own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**dataset.metadata, **(metadata or {}), "has_rewards": dataset.has_rewards}
    arrays = {name: np.ascontiguousarray(value) for name, value in dataset.arrays().items()}
    arrays["terminated"] = arrays["terminated"].astype(np.uint8)
    arrays["truncated"] = arrays["truncated"].astype(np.uint8)
    tmp = path.with_name(path.name + ".tmp")
    save_file(arrays, str(tmp), metadata={"robotune": json.dumps(meta)})
    tmp.replace(path)
    return path


def read_single_file(path: str | Path, min_length: int = 1) -> EpisodeDataset:
    path = Path(path)
    try:
        arrays = load_file(str(path))
        with safe_open(str(path), framework="np") as f:
            metadata = json.loads((f.metadata() or {}).get("robotune", "{}"))
    except Exception as exc:
        raise DatasetError(f"dataset file {path} is not a readable safetensors file: {exc}") from exc
    missing = [k for k in (*STEP_FIELDS, "episode_ends") if k not in arrays]
    if missing:
        raise DatasetError(f"dataset file {path} lacks the field(s) {missing}")
    return EpisodeDataset(
        obs=arrays["obs"],
        action=arrays["action"],
        episode_ends=arrays["episode_ends"],
        reward=arrays["reward"] if metadata.get("has_rewards", True) else None,
        terminated=arrays["terminated"].astype(bool),
        truncated=arrays["truncated"].astype(bool),
        final_obs=arrays.get("final_obs"),
        source=str(path),
        min_length=min_length,
        metadata=metadata,
    )
