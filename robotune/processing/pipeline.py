"""Observation processors: the task's observation vector -> the policy's, described by a plain config.

    task observation (D_task,)  --select observation_keys-->  --angle_keys -> (sin, cos)-->  policy observation (D_policy,)
                                                                                            --normaliser (inside the policy)--> network

The config (`ProcessorsConfig`, the `processors:` node of `robotune train`) says which entries of the
task's observation the policy sees and in which order, which of them are angles in radians (each
becomes its sine and cosine, so the policy never sees the jump at ±π), and how the policy's
normalisers are fitted (`robotune.processing.normalizers`). `ObservationProcessors` is that config
bound to the task's `obs_names`; it serialises to plain JSON, which checkpoints keep in `meta.json`
under "processors", so training, `robotune eval` and `robotune deploy` apply the same transform
without extra flags.

The normaliser is the pipeline's last step but lives in the policy's weights (`policy.safetensors`),
as before: it is affine for both kinds, so the inference fast path folds it into the first layer.
Selection and sin/cos are not affine and run here, on NumPy arrays, before the policy.

A checkpoint written before processors existed has no "processors" entry and loads with the
identity pipeline: the policy sees the task's observation as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from robotune.core.dataset import EpisodeDataset
from robotune.core.spec import TaskSpec
from robotune.processing.keys import select_columns

OBS_NORMALIZER_KINDS = ("min_max", "z_score")
ACTION_NORMALIZER_KINDS = ("min_max", "task_bounds")


class ProcessorError(ValueError):
    """A processor config or a stored pipeline does not fit the task; the message names the field."""


@dataclass
class NormalizerConfig:
    """How the policy's normalisers are fitted to the training data (see `normalizers.py`)."""

    kind: str = "min_max"  # every observation entry: min_max ([min, max] -> [-1, 1]) or z_score ((x - mean) / std)
    per_key: dict[str, str] | None = None  # overrides by key of the policy's observation, e.g. {goal: z_score}
    action: str = "min_max"  # min_max: the demonstrations' range -> [-1, 1]; task_bounds: the task's action_low/high

    def __post_init__(self) -> None:
        for where, kind in [("kind", self.kind), *((f"per_key.{k}", v) for k, v in (self.per_key or {}).items())]:
            if kind not in OBS_NORMALIZER_KINDS:
                raise ProcessorError(f"processors.normalizer.{where} must be one of {OBS_NORMALIZER_KINDS}, got '{kind}'")
        if self.action == "z_score":
            raise ProcessorError(
                "processors.normalizer.action=z_score: policies sample and clamp actions in [-1, 1], which a z-score "
                "would cut at one standard deviation; use min_max or task_bounds"
            )
        if self.action not in ACTION_NORMALIZER_KINDS:
            raise ProcessorError(f"processors.normalizer.action must be one of {ACTION_NORMALIZER_KINDS}, got '{self.action}'")


@dataclass
class ProcessorsConfig:
    """The `processors:` node of `robotune train`."""

    # Entries of the task's observation the policy sees, in order: an obs_names entry ("goal.x"), a
    # dotted prefix for all its entries ("goal"), optionally sliced ("goal[0:1]"). None: all, as they are.
    observation_keys: list[str] | None = None
    angle_keys: list[str] = field(default_factory=list)  # selected entries in radians; each becomes <name>.sin, <name>.cos
    normalizer: NormalizerConfig = field(default_factory=NormalizerConfig)


class ObservationProcessors:
    """A `ProcessorsConfig` bound to the task's observation names: `apply` maps (..., D_task) to (..., D_policy).

    `normalizer` records how the policy's normalisers were fitted (None: not from data, as in RL from
    scratch, or not recorded by an older checkpoint); the fitted values are in the policy's weights."""

    def __init__(self, config: ProcessorsConfig, input_names: tuple[str, ...], normalizer: NormalizerConfig | None) -> None:
        self.config = config
        self.input_names = tuple(input_names)
        self.normalizer = normalizer
        keys = config.observation_keys
        selected = (select_columns(keys, self.input_names, "processors.observation_keys", ProcessorError)
                    if keys is not None else list(range(len(self.input_names))))
        selected_names = [self.input_names[c] for c in selected]
        angles = set(select_columns(config.angle_keys, selected_names, "processors.angle_keys (among the selected entries)", ProcessorError))
        # Output layout: each selected entry in order, an angle as its (sin, cos) pair. One gather
        # takes every output column's source (an angle twice), then sin and cos replace the angles.
        names, gather, sin_at = [], [], []
        for position, column in enumerate(selected):
            if position in angles:
                sin_at.append(len(names))
                names += [f"{self.input_names[column]}.sin", f"{self.input_names[column]}.cos"]
                gather += [column, column]
            else:
                names.append(self.input_names[column])
                gather.append(column)
        self.obs_names = tuple(names)
        self.is_identity = self.obs_names == self.input_names
        self._gather, self._sin_at = np.array(gather, np.intp), np.array(sin_at, np.intp)
        self._cos_at = self._sin_at + 1

    @classmethod
    def identity(cls, input_names: tuple[str, ...]) -> ObservationProcessors:
        return cls(ProcessorsConfig(), input_names, None)

    def apply(self, obs: np.ndarray) -> np.ndarray:
        """The policy's observation (..., D_policy) for the task's (..., D_task), in obs's float dtype."""
        obs = np.asarray(obs)
        if obs.shape[-1] != len(self.input_names):
            raise ProcessorError(f"observation has {obs.shape[-1]} entries, but the processors take {len(self.input_names)}: {list(self.input_names)}")
        if self.is_identity:
            return obs
        # Indexing the last axis through .T (the first axis of the reversed view): for one observation,
        # as deploy passes every tick, x[idx] takes ~0.1 µs where x[..., idx] took ~4 µs.
        out = (obs if obs.dtype.kind == "f" else obs.astype(np.float32)).T[self._gather].T
        if len(self._sin_at):
            angles = out.T[self._sin_at]
            out.T[self._sin_at] = np.sin(angles)
            out.T[self._cos_at] = np.cos(angles)
        return out

    def policy_spec(self, task_spec: TaskSpec) -> TaskSpec:
        """The spec the policy is built with: the task's, observing `obs_names`."""
        self.check_task(task_spec)
        return replace(task_spec, obs_names=self.obs_names)

    def check_task(self, task_spec: TaskSpec) -> None:
        if tuple(task_spec.obs_names) != self.input_names:
            raise ProcessorError(
                f"task '{task_spec.name}' observes {list(task_spec.obs_names)}, but the processors were built for "
                f"{list(self.input_names)}"
            )

    def apply_to_dataset(self, dataset: EpisodeDataset) -> EpisodeDataset:
        """The dataset with its observations (and final observations) processed; itself when identity."""
        if self.is_identity:
            return dataset
        return EpisodeDataset(
            obs=np.ascontiguousarray(self.apply(np.asarray(dataset.obs))),
            action=dataset.action,
            episode_ends=dataset.episode_ends,
            reward=dataset.reward if dataset.has_rewards else None,
            terminated=dataset.terminated,
            truncated=dataset.truncated,
            final_obs=np.ascontiguousarray(self.apply(np.asarray(dataset.final_obs))) if dataset.has_final_obs else None,
            source=dataset.source,
            metadata=dataset.metadata,
        )

    # ---- the checkpoint's meta.json entry ---------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "input_names": list(self.input_names),
            "observation_keys": self.config.observation_keys,
            "angle_keys": list(self.config.angle_keys),
            "obs_names": list(self.obs_names),
            "normalizer": asdict(self.normalizer) if self.normalizer is not None else None,
        }

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> ObservationProcessors:
        """Rebuild from `to_json`'s dict; the recomputed observation names must equal the stored ones."""
        try:
            normalizer = NormalizerConfig(**entry["normalizer"]) if entry.get("normalizer") is not None else None
            config = ProcessorsConfig(entry.get("observation_keys"), list(entry.get("angle_keys", [])), normalizer or NormalizerConfig())
            processors = cls(config, tuple(entry["input_names"]), normalizer)
        except (KeyError, TypeError) as exc:
            raise ProcessorError(f"the processors entry lacks or mistypes a field: {exc!r}") from None
        if list(processors.obs_names) != list(entry.get("obs_names", [])):
            raise ProcessorError(f"the processors entry gives obs_names {entry.get('obs_names')}, but its keys make {list(processors.obs_names)}")
        return processors

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> ObservationProcessors:
        """The pipeline of a checkpoint's meta.json; the identity over its spec when it has none (older checkpoints)."""
        policy_spec = TaskSpec.from_dict(meta["task_spec"])
        if meta.get("processors") is None:
            return cls.identity(policy_spec.obs_names)
        try:
            processors = cls.from_json(meta["processors"])
        except ProcessorError as exc:
            raise ProcessorError(f"meta.json: {exc}") from None
        if processors.obs_names != policy_spec.obs_names:
            raise ProcessorError(f"meta.json: the processors make {list(processors.obs_names)}, but the policy observes {list(policy_spec.obs_names)}")
        return processors


def task_spec_from_meta(meta: dict[str, Any]) -> TaskSpec:
    """The task's own spec (what the robot or simulator provides) from a checkpoint's meta.json.

    meta.json's "task_spec" is the policy's, which observes the processed entries."""
    processors = ObservationProcessors.from_meta(meta)
    return replace(TaskSpec.from_dict(meta["task_spec"]), obs_names=processors.input_names)
