"""Building a dataset from per-episode arrays, as recorders and importers produce them.

A recorder (scripted demonstrations, a generated locomotion dataset) or an importer of a format
that stores episodes apart (robomimic, Minari) holds one `Episode` per episode; `concatenate_episodes`
checks each against the first, so an error names the episode, and concatenates them into the flat
arrays of an `EpisodeDataset`, which validates the rest (see `robotune.core.dataset`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robotune.core.dataset import STEP_FIELDS, DatasetError, Episode, EpisodeDataset

OPTIONAL_STEP_FIELDS = ("reward", "terminated", "truncated")


def concatenate_episodes(
    episodes: Sequence[Episode], source: str = "<memory>", min_length: int = 1, metadata: dict[str, Any] | None = None
) -> EpisodeDataset:
    """One dataset of `episodes`, in order; a field given for some episodes must be given for all of them.

    `source` names the data in error messages; `min_length` and `metadata` are the dataset's.
    """
    where = f"dataset {source}"
    if not episodes:
        raise DatasetError(f"{where}: contains no episodes")
    first = episodes[0]
    obs_dim = first.obs.shape[-1] if first.obs.ndim == 2 else None
    action_dim = first.action.shape[-1] if first.action.ndim == 2 else None
    for i, episode in enumerate(episodes):
        at = f"{where}, episode {i}"
        for name, dim in (("obs", obs_dim), ("action", action_dim)):
            shape = getattr(episode, name).shape
            if len(shape) != 2 or shape[1] != dim:
                raise DatasetError(f"{at}: '{name}' must have shape (T, {dim}), got {shape}")
        for name in ("obs", *OPTIONAL_STEP_FIELDS):
            value = getattr(episode, name)
            if value is not None and len(value) != len(episode.action):
                raise DatasetError(f"{at}: '{name}' has {len(value)} steps but 'action' has {len(episode.action)}")
        if episode.final_obs is not None and np.shape(episode.final_obs) != (obs_dim,):
            raise DatasetError(f"{at}: 'final_obs' must have shape ({obs_dim},), got {np.shape(episode.final_obs)}")
        for name in (*OPTIONAL_STEP_FIELDS, "final_obs"):
            if (getattr(episode, name) is None) != (getattr(first, name) is None):
                state = "absent" if getattr(episode, name) is None else "given"
                raise DatasetError(f"{at}: '{name}' is {state} but not in episode 0; give it for all episodes or none")

    def joined(name: str) -> np.ndarray | None:
        return None if getattr(first, name) is None else np.concatenate([getattr(e, name) for e in episodes])

    return EpisodeDataset(
        **{name: joined(name) for name in STEP_FIELDS},
        episode_ends=np.cumsum([len(e) for e in episodes], dtype=np.int64),
        final_obs=None if first.final_obs is None else np.stack([e.final_obs for e in episodes]),
        source=source,
        min_length=min_length,
        metadata=metadata,
    )
