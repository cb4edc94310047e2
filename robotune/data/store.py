"""robotune's own dataset format: a zarr v3 store of the flat episode arrays, with a memory-mapped load.

Why zarr v3: it is chunked and compressed, its layout is an open specification that zarr-python,
zarr.js, TensorStore and others read without robotune, and the diffusion_policy replay buffers that
robot-learning users already have are zarr too. A directory of `.npy` files would memory-map with
no work but is not compressed; HDF5 compresses but its chunks cannot be memory-mapped either, and it
is a single file that a crashed writer leaves corrupt.

Layout (all arrays chunked along time, rows of about 1 MiB per chunk, Blosc-zstd with byte shuffle,
which shrinks float arrays far better than plain zstd):

    <store>/zarr.json      root group; attributes["robotune_dataset"] holds the metadata below
    <store>/obs            (N, obs_dim) float32      and action, reward, terminated, truncated
    <store>/episode_ends   (E,) int64, the episode index (cumulative ends)
    <store>/final_obs      (E, obs_dim) float32, only when the dataset has final observations

Metadata: `schema_version`, `num_episodes`, `num_steps`, `has_rewards`, `created_utc`,
`robotune_version` and `provenance` (what generated the data, from which source file), plus any
fields the writer passes (observation key layout, reference returns, ...).

Memory-mapped loading: compressed chunks cannot be mapped, so `read_store(mmap=True)` decompresses
each array once, chunk by chunk, into a `.npy` cache and maps that read-only. The cache lives outside
the store (zarr warns about foreign folders inside a hierarchy), under `$ROBOTUNE_CACHE_DIR` or
`~/.cache/robotune`, keyed by the store's path and the sizes and times of its files, so an edited
store is never read stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import zarr

import robotune
from robotune.core.dataset import ARRAY_FIELDS, DatasetError, EpisodeDataset

SCHEMA_VERSION = 1
METADATA_KEY = "robotune_dataset"
CHUNK_BYTES = 1 << 20
# called with (rows_done, rows_total) while arrays are written or decompressed
Progress = Callable[[int, int], None]


def provenance(generator: str, source: str | Path | None = None, **details: Any) -> dict[str, Any]:
    """The `provenance` metadata entry: what produced the data and from which file, if any."""
    entry: dict[str, Any] = {"generator": generator, "source": None if source is None else str(source)}
    entry.update(details)
    return entry


def is_store(path: Path) -> bool:
    """True for a directory that is a robotune zarr store (its root attributes say so)."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return METADATA_KEY in json.loads(meta.read_text()).get("attributes", {})
    except (OSError, json.JSONDecodeError):
        return False


def write_store(
    dataset: EpisodeDataset,
    path: str | Path,
    metadata: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write `dataset` as a store at `path`, atomically: into a temporary folder, then renamed.

    An existing robotune store at `path` is replaced; any other existing file or folder is refused.
    """
    path = Path(path)
    if path.exists() and not is_store(path):
        raise DatasetError(f"{path} exists and is not a robotune dataset store; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        **dataset.metadata,
        **(metadata or {}),
        "schema_version": SCHEMA_VERSION,
        "num_episodes": len(dataset),
        "num_steps": dataset.num_steps,
        "has_rewards": dataset.has_rewards,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "robotune_version": robotune.__version__,
    }
    meta.setdefault("provenance", provenance("unknown", dataset.source))
    arrays = dataset.arrays()
    total_rows = sum(len(a) for a in arrays.values())
    done = 0
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3, attributes={METADATA_KEY: _json_safe(meta)})
        for name, value in arrays.items():
            row_bytes = max(1, value.dtype.itemsize * int(np.prod(value.shape[1:], dtype=np.int64)))
            rows_per_chunk = max(1, min(len(value), CHUNK_BYTES // row_bytes))
            out = root.create_array(
                name,
                shape=value.shape,
                dtype=value.dtype,
                chunks=(rows_per_chunk, *value.shape[1:]),
                compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"),
            )
            for start in range(0, len(value), rows_per_chunk):
                out[start : start + rows_per_chunk] = np.asarray(value[start : start + rows_per_chunk])
                done += min(rows_per_chunk, len(value) - start)
                if progress:
                    progress(done, total_rows)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_store(
    path: str | Path,
    min_length: int = 1,
    mmap: bool = True,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> EpisodeDataset:
    """Load a store; with `mmap` its arrays are read-only memory maps of a decompressed cache."""
    path = Path(path)
    if not is_store(path):
        raise DatasetError(f"{path} is not a robotune dataset store (no '{METADATA_KEY}' in its zarr.json attributes)")
    root = zarr.open_group(str(path), mode="r")
    meta = dict(root.attrs[METADATA_KEY])
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise DatasetError(
            f"dataset store {path} has schema version {version!r}; this robotune reads versions up to "
            f"{SCHEMA_VERSION}: upgrade robotune"
        )
    names = [name for name in ARRAY_FIELDS if name in root]
    missing = set(ARRAY_FIELDS) - {"final_obs"} - set(names)
    if missing:
        raise DatasetError(f"dataset store {path} lacks the array(s) {sorted(missing)}")
    if mmap:
        arrays = _mapped_arrays(path, root, names, cache_dir, progress)
    else:
        arrays = {name: root[name][...] for name in names}
    return EpisodeDataset(
        obs=arrays["obs"],
        action=arrays["action"],
        episode_ends=arrays["episode_ends"],
        reward=arrays["reward"] if meta.get("has_rewards", True) else None,
        terminated=arrays["terminated"],
        truncated=arrays["truncated"],
        final_obs=arrays.get("final_obs"),
        source=str(path),
        min_length=min_length,
        metadata=meta,
    )


def default_cache_dir() -> Path:
    return Path(os.environ.get("ROBOTUNE_CACHE_DIR", Path.home() / ".cache" / "robotune"))


def _mapped_arrays(
    path: Path, root: zarr.Group, names: list[str], cache_dir: str | Path | None, progress: Progress | None
) -> dict[str, np.ndarray]:
    """Decompress once into `<cache>/decompressed/<path key>-<content key>/` and map the `.npy` files."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path_key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    stamp = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        info = file.stat()
        stamp.update(f"{file.relative_to(path)}:{info.st_size}:{info.st_mtime_ns};".encode())
    target = base / "decompressed" / f"{path_key}-{stamp.hexdigest()[:12]}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            total_rows, done = sum(root[n].shape[0] for n in names), 0
            for name in names:
                source = root[name]
                out = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=source.dtype, shape=source.shape)
                rows = source.chunks[0]
                for start in range(0, source.shape[0], rows):
                    out[start : start + rows] = source[start : start + rows]
                    done += min(rows, source.shape[0] - start)
                    if progress:
                        progress(done, total_rows)
                out.flush()
                del out
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for stale in target.parent.glob(f"{path_key}-*"):  # older decompressions of this store
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not target.is_dir():  # else a concurrent reader won the rename
                raise
    return {name: np.load(target / f"{name}.npy", mmap_mode="r") for name in names}


def _json_safe(value: Any) -> Any:
    """Metadata as plain JSON types (NumPy scalars and arrays become numbers and lists)."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
