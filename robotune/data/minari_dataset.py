"""Import and export Minari datasets (the Farama Foundation's offline-RL format, D4RL's successor).

A Minari dataset is a folder `<root>/<namespace>/<name>-v<version>/data/` holding `metadata.json` and
the episodes (`main_data.hdf5`, or Arrow files). Each episode stores T + 1 observations (the last is
the one after the final action), T actions, rewards, terminations and truncations, which map one to
one onto robotune's fields, final observation included.

Reading goes through `minari.MinariDataset`, so both of Minari's storage formats work; a Dict
observation space is flattened by `obs_keys` (default: all its keys, in the space's order). Writing
uses `minari.create_dataset_from_buffers`, which needs no jax (its DataCollector does), and records
the reference returns for `minari.get_normalized_score` when the dataset carries them.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robotune.core.dataset import DatasetError, Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes
from robotune.data.keys import concatenate_keys
from robotune.data.store import provenance


def read_minari(path: str | Path, obs_keys: list[str] | None = None, min_length: int = 1) -> EpisodeDataset:
    """Read a Minari dataset folder: the dataset's own folder, its `data/` folder, or its `main_data.hdf5`."""
    from minari import MinariDataset

    path = Path(path)
    data_path = path.parent if path.is_file() else path / "data" if (path / "data" / "metadata.json").is_file() else path
    where = f"Minari dataset {path}"
    try:
        minari_dataset = MinariDataset(data_path)
    except Exception as exc:  # minari raises ValueError, KeyError, OSError... for a broken folder
        raise DatasetError(f"{where} cannot be read by minari: {type(exc).__name__}: {exc}") from exc
    if not isinstance(minari_dataset.action_space, gym.spaces.Box):
        raise DatasetError(f"{where}: robotune needs continuous (Box) actions, the dataset has {minari_dataset.action_space}")
    dict_obs = isinstance(minari_dataset.observation_space, gym.spaces.Dict)
    keys = obs_keys or (list(minari_dataset.observation_space.spaces) if dict_obs else None)
    if keys is not None and not dict_obs:
        raise DatasetError(f"{where}: obs_keys {keys} given, but observations are one array, not a dict of keys")
    episodes, layout = [], None
    for i, ep in enumerate(minari_dataset.iterate_episodes()):
        at = f"{where}, episode {i} (id {ep.id})"
        steps = len(ep.actions)
        if dict_obs:
            all_obs, layout = concatenate_keys(ep.observations, keys, steps + 1, at)
        else:
            all_obs = np.asarray(ep.observations, dtype=np.float32)
            if len(all_obs) != steps + 1:
                raise DatasetError(f"{at}: {len(all_obs)} observations for {steps} actions; Minari stores T + 1")
            all_obs = all_obs.reshape(steps + 1, -1)
        episodes.append(
            Episode(
                obs=all_obs[:-1],
                action=np.asarray(ep.actions, dtype=np.float32).reshape(steps, -1),
                reward=np.asarray(ep.rewards, dtype=np.float32),
                terminated=np.asarray(ep.terminations, dtype=bool),
                truncated=np.asarray(ep.truncations, dtype=bool),
                final_obs=all_obs[-1],
            )
        )
    minari_meta = minari_dataset.storage.metadata
    metadata: dict[str, Any] = {
        "provenance": provenance("robotune.data.minari_dataset", path, dataset_id=minari_meta.get("dataset_id")),
        "source_format": "minari",
    }
    if layout is not None:
        metadata["obs_keys"] = layout
    if minari_meta.get("ref_min_score") is not None and minari_meta.get("ref_max_score") is not None:
        metadata["reference_returns"] = {
            "random": float(minari_meta["ref_min_score"]),
            "expert": float(minari_meta["ref_max_score"]),
            "source": "minari metadata",
        }
    if not episodes:
        raise DatasetError(f"{where}: contains no episodes")
    return concatenate_episodes(episodes, source=str(path), min_length=min_length, metadata=metadata)


def write_minari(
    dataset: EpisodeDataset,
    dataset_id: str,
    root: str | Path | None = None,
    env_id: str | None = None,
    data_format: str = "hdf5",
) -> Path:
    """Write `dataset` as the Minari dataset `dataset_id` ("namespace/name-v0") under `root`.

    root: Minari's datasets folder (default: Minari's own, `$MINARI_DATASETS_PATH` or
        `~/.minari/datasets`), so `minari.load_dataset(dataset_id)` finds it there.
    env_id: the Gymnasium environment recorded with the data (default: the dataset's `env_id`
        metadata, if any). Returns the dataset's folder.
    """
    from minari import create_dataset_from_buffers
    from minari.data_collector import EpisodeBuffer

    env_id = env_id or dataset.metadata.get("env_id")
    observation_space = gym.spaces.Box(-np.inf, np.inf, (dataset.obs_dim,), np.float32)
    action_space = gym.spaces.Box(dataset.action.min(0), dataset.action.max(0), dtype=np.float32)
    buffers = []
    for i in range(len(dataset)):
        ep = dataset.episode(i)
        final = dataset.final_obs[i]  # the last observation repeated when the dataset has none
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=np.concatenate([ep.obs, final[None]]),
                actions=np.asarray(ep.action),
                rewards=np.asarray(dataset.reward[dataset.episode_starts[i] : dataset.episode_ends[i]]).tolist(),
                terminations=np.asarray(ep.terminated).tolist(),
                truncations=np.asarray(ep.truncated).tolist(),
                infos={},
            )
        )
    previous_root = os.environ.get("MINARI_DATASETS_PATH")
    if root is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        with warnings.catch_warnings():  # minari warns about every unset optional field (author, ...)
            warnings.simplefilter("ignore", UserWarning)
            created = create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env_id,
                observation_space=observation_space,
                action_space=action_space,
                algorithm_name=json.dumps(dataset.metadata.get("provenance", {"source": dataset.source})),
                description=f"Exported by robotune from {dataset.source}; has_rewards={dataset.has_rewards}, "
                f"has_final_obs={dataset.has_final_obs}",
                data_format=data_format,
            )
    except ValueError as exc:
        raise DatasetError(f"Minari refused to write '{dataset_id}': {exc}") from exc
    finally:
        if root is not None:
            if previous_root is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = previous_root
    references = dataset.metadata.get("reference_returns") or {}
    if "random" in references and "expert" in references:
        # Set afterwards: given at creation, minari only keeps them after rolling out the environment.
        created.storage.update_metadata(
            {"ref_min_score": float(references["random"]), "ref_max_score": float(references["expert"])}
        )
    return Path(created.storage.data_path).parent
