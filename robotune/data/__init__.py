"""Dataset files: robotune's own formats, importers of other libraries' formats, and exporters.

`load_dataset(path)` reads any supported file or folder into an `EpisodeDataset`, detecting the
format from what the path holds. Each format lives in a module of its own, imported only when used,
so reading robotune's own files never imports h5py, pyarrow or minari:

| format             | path                                          | module                         |
|--------------------|-----------------------------------------------|--------------------------------|
| `robotune`         | zarr v3 store with robotune metadata          | `robotune.data.store`          |
| `safetensors`      | `*.safetensors` single file                   | `robotune.data.single_file`    |
| `robomimic`        | HDF5 with `data/demo_*`                       | `robotune.data.robomimic_hdf5` |
| `diffusion_policy` | zarr with `data/*` and `meta/episode_ends`    | `robotune.data.diffusion_policy_zarr` |
| `minari`           | Minari dataset folder (`data/metadata.json`)  | `robotune.data.minari_dataset` |
| `lerobot`          | LeRobotDataset v3 folder (`meta/info.json`)   | `robotune.data.lerobot_v3`     |

Foreign formats name their observation parts; `obs_keys` says which of them make the observation,
in order (`robotune.data.keys`), and `action_key` which array holds the actions.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robotune.core.dataset import DatasetError, EpisodeDataset
from robotune.data.keys import as_key_list

FORMATS = ("robotune", "safetensors", "robomimic", "diffusion_policy", "minari", "lerobot")


def detect_format(path: str | Path) -> str:
    """The format of a file or folder, from its suffix and the files it holds (see the table above)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset path {path} does not exist")
    if path.is_file():
        if path.suffix == ".safetensors":
            return "safetensors"
        if path.suffix == ".zip":
            return "diffusion_policy"
        if path.suffix in (".hdf5", ".h5"):
            if _is_minari_folder(path.parent):
                return "minari"
            return "robomimic"
    else:
        from robotune.data.store import is_store

        if is_store(path):
            return "robotune"
        if (path / "meta" / "info.json").is_file():
            return "lerobot"
        if _is_minari_folder(path) or _is_minari_folder(path / "data"):
            return "minari"
        if ((path / "zarr.json").is_file() or (path / ".zgroup").is_file()) and (path / "meta").is_dir():
            return "diffusion_policy"
    raise DatasetError(
        f"cannot tell the format of {path}: expected a .safetensors file, a robomimic .hdf5 file, a "
        "diffusion_policy .zarr folder or .zarr.zip, a robotune store, a Minari dataset folder or a "
        "LeRobotDataset v3 folder (meta/info.json); name one with format=..."
    )


def load_dataset(
    path: str | Path,
    obs_keys: str | Sequence[str] | None = None,
    action_key: str | None = None,
    format: str | None = None,
    min_length: int = 1,
    **options: Any,
) -> EpisodeDataset:
    """Read `path` as `format` (detected when None).

    obs_keys: the keys that make the observation, in order (a list or a comma-separated string);
        each format has a default, recorded in the result's `metadata["obs_keys"]`.
    action_key: the array holding the actions (each format has a default).
    options: format-specific, e.g. `mmap`/`cache_dir` (robotune store), `filter_key` (robomimic),
        `reward_key` (diffusion_policy). An option the format does not take is an error.
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise DatasetError(f"unknown dataset format {format!r}; known formats: {', '.join(FORMATS)}")
    fmt = format or detect_format(path)
    reader = _reader(fmt)
    kwargs = dict(options)
    if obs_keys is not None:
        kwargs["obs_keys"] = as_key_list(obs_keys)
    if action_key is not None:
        kwargs["action_key"] = action_key
    accepted = set(inspect.signature(reader).parameters) - {"path", "min_length"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise DatasetError(f"the {fmt} format ({path}) takes no option(s) {unknown}; it takes {sorted(accepted)}")
    return reader(path, min_length=min_length, **kwargs)


def save_dataset(
    dataset: EpisodeDataset, path: str | Path, metadata: dict[str, Any] | None = None, **options: Any
) -> Path:
    """Write a `.safetensors` single file, or robotune's chunked store for any other path.

    Both are written atomically (a reader never sees half a dataset); `metadata` is merged over the
    dataset's own."""
    if Path(path).suffix == ".safetensors":
        from robotune.data.single_file import write_single_file

        return write_single_file(dataset, path, metadata)
    from robotune.data.store import write_store

    return write_store(dataset, path, metadata, **options)


def _reader(fmt: str) -> Callable[..., EpisodeDataset]:
    if fmt == "robotune":
        from robotune.data.store import read_store

        return read_store
    if fmt == "safetensors":
        from robotune.data.single_file import read_single_file

        return read_single_file
    if fmt == "robomimic":
        from robotune.data.robomimic_hdf5 import read_robomimic

        return read_robomimic
    if fmt == "diffusion_policy":
        from robotune.data.diffusion_policy_zarr import read_diffusion_policy

        return read_diffusion_policy
    if fmt == "minari":
        from robotune.data.minari_dataset import read_minari

        return read_minari
    from robotune.data.lerobot_v3 import read_lerobot

    return read_lerobot


def _is_minari_folder(path: Path) -> bool:
    meta = path / "metadata.json"
    try:
        return meta.is_file() and "minari_version" in json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return False
