"""Fitting a policy's normalisers to its training data, per key: min-max or z-score.

Both kinds are the affine map of `robotune.core.normalization.Normalizer`, x_norm = (x - center) / scale:

    min_max   center = (min + max) / 2, scale = (max - min) / 2    the data's range -> [-1, 1]
    z_score   center = mean,            scale = std                 zero mean, unit variance

so a policy, its checkpoint and the fast inference path (which folds the map into the first layer)
do not care which was used; an entry that barely varies keeps unit scale under either. Observations
take either kind per key of the policy's observation. Actions are always mapped onto [-1, 1], from
the demonstrations' range (min_max) or the task's declared bounds (task_bounds), because policies
sample and clamp actions there.
"""

from __future__ import annotations

import numpy as np

from robotune.core.dataset import EpisodeDataset
from robotune.core.normalization import Normalizer
from robotune.core.spec import TaskSpec
from robotune.processing.keys import select_columns
from robotune.processing.pipeline import NormalizerConfig, ProcessorError


def observation_kinds(config: NormalizerConfig, obs_names: tuple[str, ...]) -> list[str]:
    """The normaliser kind of each entry of the policy's observation: `kind`, unless a `per_key` key covers it."""
    kinds = [config.kind] * len(obs_names)
    claimed: dict[int, str] = {}
    for key, kind in (config.per_key or {}).items():
        for column in select_columns([key], obs_names, "processors.normalizer.per_key", ProcessorError):
            if column in claimed:
                raise ProcessorError(
                    f"processors.normalizer.per_key: '{obs_names[column]}' is covered by both '{claimed[column]}' and '{key}'"
                )
            claimed[column] = key
            kinds[column] = kind
    return kinds


def fit_normalizers(config: NormalizerConfig, spec: TaskSpec, dataset: EpisodeDataset | None) -> tuple[Normalizer, Normalizer]:
    """(observation, action) normalisers for a policy of `spec` (its processed observation) trained on
    `dataset`, already processed. Without a dataset (RL from scratch) there is nothing to fit:
    observations stay as they are and actions map from the task's bounds, so `config` must be the default."""
    if dataset is None:
        if config != NormalizerConfig():
            raise ProcessorError(
                f"processors.normalizer={config} needs training data to fit, and this algorithm learns without a "
                "dataset (observations stay unnormalised, actions map from the task's bounds); leave it at its default"
            )
        return Normalizer.identity(spec.obs_dim), Normalizer(spec.action_low, spec.action_high)
    stats = dataset.stats()
    z_score = np.array([kind == "z_score" for kind in observation_kinds(config, spec.obs_names)])
    # Normalizer takes the bounds whose midpoint is the center and whose half-width is the scale.
    low = np.where(z_score, stats["obs_mean"] - stats["obs_std"], stats["obs_min"])
    high = np.where(z_score, stats["obs_mean"] + stats["obs_std"], stats["obs_max"])
    if config.action == "task_bounds":
        action_normalizer = Normalizer(spec.action_low, spec.action_high)
    else:
        action_normalizer = Normalizer(stats["action_min"], stats["action_max"])
    return Normalizer(low, high), action_normalizer
