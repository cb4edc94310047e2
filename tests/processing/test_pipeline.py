"""Observation processors: key selection, angle -> (sin, cos), per-key min-max / z-score normalisers,
and their round trip through a checkpoint's meta.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from robotune.core.checkpoint import load_checkpoint, save_checkpoint
from robotune.core.dataset import EpisodeDataset
from robotune.core.spec import TaskSpec
from robotune.processing.normalizers import fit_normalizers
from robotune.processing.pipeline import (
    NormalizerConfig,
    ObservationProcessors,
    ProcessorError,
    ProcessorsConfig,
    task_spec_from_meta,
)
from robotune.robots.reach_around.task import OBS_NAMES
from robotune.training.loop import build_components, train
from tests.helpers import compose_config, tiny_train_overrides

ANGLES_AND_ZSCORE = [
    "processors.observation_keys=[goal,shoulder,elbow.pos]",
    "processors.angle_keys=[shoulder.pos,elbow.pos]",
    "processors.normalizer.kind=z_score",
    "processors.normalizer.per_key={goal:min_max}",
]


def test_selection_orders_entries_by_key_and_replaces_angles_by_sin_and_cos():
    processors = ObservationProcessors(
        ProcessorsConfig(observation_keys=["goal", "shoulder", "elbow.pos"], angle_keys=["shoulder.pos", "elbow"]), OBS_NAMES, None
    )
    assert processors.obs_names == (
        "goal.x", "goal.y", "shoulder.pos.sin", "shoulder.pos.cos", "shoulder.vel", "elbow.pos.sin", "elbow.pos.cos",
    )
    # [shoulder.pos, elbow.pos, shoulder.vel, elbow.vel, goal.x, goal.y]; elbow.vel is not selected
    obs = np.array([math.pi / 6, -math.pi / 2, 0.7, 9.0, 0.4, -0.3], np.float32)
    # by hand: sin(pi/6) = 1/2, cos(pi/6) = sqrt(3)/2; sin(-pi/2) = -1, cos(-pi/2) = 0
    expected = [0.4, -0.3, 0.5, math.sqrt(3) / 2, 0.7, -1.0, 0.0]
    np.testing.assert_allclose(processors.apply(obs), expected, atol=1e-6)
    # Any leading shape, and the same map row by row (a batch of observation windows).
    batch = np.stack([obs, obs * 0.5]).reshape(1, 2, 6)
    np.testing.assert_allclose(processors.apply(batch)[0, 1], processors.apply(obs * 0.5), atol=1e-7)
    # Either side of the +-pi wrap is the same point to the policy.
    near = processors.apply(np.array([math.pi - 1e-3, 0, 0, 0, 0, 0], np.float32))
    far = processors.apply(np.array([-math.pi + 1e-3, 0, 0, 0, 0, 0], np.float32))
    np.testing.assert_allclose(near[2:4], far[2:4], atol=3e-3)


def test_z_score_and_min_max_per_key_match_a_hand_computation():
    spec = TaskSpec("hand", ("a.x", "a.y", "b", "c"), (-1.0,), (1.0,), 10.0, 10)
    obs = np.array([[1.0, 0.0, 2.0, 5.0], [2.0, 10.0, 4.0, 5.0], [3.0, 4.0, 6.0, 5.0], [6.0, 2.0, 8.0, 5.0]], np.float32)
    dataset = EpisodeDataset(obs=obs, action=np.array([[0.0], [1.0], [2.0], [4.0]], np.float32), episode_ends=np.array([2, 4]))
    config = NormalizerConfig(kind="z_score", per_key={"a.y": "min_max"}, action="min_max")
    obs_normalizer, action_normalizer = fit_normalizers(config, spec, dataset)
    # a.x = 1, 2, 3, 6: mean 3, std sqrt((4 + 1 + 0 + 9) / 4) = sqrt(3.5); b = 2, 4, 6, 8: mean 5, std sqrt(5)
    # a.y = 0, 10, 4, 2: min_max, center 5, half range 5; c is constant: unit scale around its mean 5
    x = torch.tensor([[4.0, 7.5, 1.0, 6.0]])
    expected = [(4 - 3) / math.sqrt(3.5), (7.5 - 5) / 5, (1 - 5) / math.sqrt(5), 1.0]
    torch.testing.assert_close(obs_normalizer.normalize(x), torch.tensor([expected]), rtol=1e-5, atol=1e-6)
    # actions: the demonstrations' range [0, 4] -> [-1, 1]
    torch.testing.assert_close(action_normalizer.normalize(torch.tensor([[0.0], [3.0]])), torch.tensor([[-1.0], [0.5]]))
    bounds = fit_normalizers(NormalizerConfig(action="task_bounds"), spec, dataset)[1]
    torch.testing.assert_close(bounds.normalize(torch.tensor([[0.5]])), torch.tensor([[0.5]]))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ProcessorsConfig(observation_keys=["goal", "gaol"]), r"processors.observation_keys: no observation key 'gaol'; available: \[.*'goal'"),
        (ProcessorsConfig(angle_keys=["wrist.pos"]), r"processors.angle_keys .*: no observation key 'wrist.pos'"),
        (ProcessorsConfig(observation_keys=["goal"], angle_keys=["shoulder.pos"]), r"processors.angle_keys .*: no observation key 'shoulder.pos'"),
        (ProcessorsConfig(observation_keys=["goal", "goal.x"]), r"key 'goal.x' selects \['goal.x'\] again"),
        (ProcessorsConfig(observation_keys=["goal[2:]"]), r"key 'goal\[2:\]' selects none of \['goal.x', 'goal.y'\]"),
    ],
    ids=["unknown-key", "unknown-angle", "angle-not-selected", "selected-twice", "empty-slice"],
)
def test_a_bad_key_is_an_error_naming_the_field_and_the_key(config, message):
    with pytest.raises(ProcessorError, match=message):
        ObservationProcessors(config, OBS_NAMES, None)


def test_bad_normalizer_settings_name_the_field():
    with pytest.raises(ProcessorError, match=r"processors.normalizer.per_key.goal must be one of \('min_max', 'z_score'\), got 'zscore'"):
        NormalizerConfig(per_key={"goal": "zscore"})
    with pytest.raises(ProcessorError, match=r"processors.normalizer.action=z_score: policies sample and clamp actions in \[-1, 1\]"):
        NormalizerConfig(action="z_score")
    spec = TaskSpec("t", OBS_NAMES, (-1.0,), (1.0,), 10.0, 10)
    with pytest.raises(ProcessorError, match=r"processors.normalizer.per_key: no observation key 'gaol'"):
        fit_normalizers(NormalizerConfig(per_key={"gaol": "z_score"}), spec, EpisodeDataset(
            obs=np.zeros((2, 6), np.float32), action=np.zeros((2, 1), np.float32), episode_ends=np.array([2])))
    with pytest.raises(ProcessorError, match=r"needs training data to fit"):
        fit_normalizers(NormalizerConfig(kind="z_score"), spec, None)


def test_a_bad_key_in_the_train_config_stops_the_run_before_training(tmp_path):
    cfg = compose_config("train", [*tiny_train_overrides(tmp_path), "processors.observation_keys=[shoulder,gaol]"])
    with pytest.raises(ProcessorError, match=r"processors.observation_keys: no observation key 'gaol'"):
        train(cfg)


def test_processors_round_trip_through_a_checkpoint_with_identical_outputs(tmp_path):
    cfg = compose_config("train", [*tiny_train_overrides(tmp_path, policy="gaussian"), *ANGLES_AND_ZSCORE])
    parts = build_components(cfg, console=None)
    assert parts.policy.spec.obs_names == parts.processors.obs_names == parts.task.spec.obs_names
    path = save_checkpoint(tmp_path / "checkpoints", 1, parts.policy, {"step": 1}, cfg, processors=parts.processors.to_json())
    checkpoint = load_checkpoint(path)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["processors"]["angle_keys"] == ["shoulder.pos", "elbow.pos"]
    assert meta["processors"]["normalizer"] == {"kind": "z_score", "per_key": {"goal": "min_max"}, "action": "min_max"}
    reloaded = ObservationProcessors.from_meta(checkpoint.meta)
    assert task_spec_from_meta(meta).obs_names == OBS_NAMES  # what deploy reads its signals by

    rng = np.random.default_rng(0)
    raw = rng.uniform(-3.0, 3.0, size=(6, cfg.policy.obs_horizon, len(OBS_NAMES))).astype(np.float32)  # (B, To, task obs)
    processed = parts.processors.apply(raw)
    np.testing.assert_array_equal(reloaded.apply(raw), processed)
    for deterministic in (True, False):
        before = parts.policy.predict_chunk(torch.from_numpy(processed), deterministic, torch.Generator().manual_seed(3))
        after = checkpoint.policy.predict_chunk(torch.from_numpy(reloaded.apply(raw)), deterministic, torch.Generator().manual_seed(3))
        torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_a_checkpoint_without_processors_loads_with_the_identity(tmp_path):
    """Checkpoints written before processors existed: no entry in meta.json, the task's observation as it is."""
    from robotune.rollout.evaluation import evaluate_checkpoint

    summary = train(compose_config("train", tiny_train_overrides(tmp_path, steps=20)))
    meta_file = tmp_path / "run" / "checkpoints" / "step_0000020" / "meta.json"
    meta = json.loads(meta_file.read_text())
    assert meta["processors"]["obs_names"] == list(OBS_NAMES)
    del meta["processors"]
    meta_file.write_text(json.dumps(meta))

    processors = ObservationProcessors.from_meta(meta)
    assert processors.is_identity and processors.obs_names == OBS_NAMES and processors.normalizer is None
    assert task_spec_from_meta(meta) == TaskSpec.from_dict(meta["task_spec"])
    obs = np.ones((2, 6), np.float32)
    assert processors.apply(obs) is obs
    result = evaluate_checkpoint(compose_config("eval", [f"checkpoint={tmp_path / 'run'}", "episodes=4", "num_envs=2"]))
    assert result["mean_return"] == summary["eval_mean_return"]


def test_a_stored_pipeline_for_another_task_is_refused():
    from robotune.processing.task import processed_task
    from robotune.robots.reach_around.task import ReachAroundTask

    processors = ObservationProcessors(ProcessorsConfig(angle_keys=["a"]), ("a", "b"), None)
    with pytest.raises(ProcessorError, match=r"task 'reach_around' observes \['shoulder.pos', .*\], but the processors were built for \['a', 'b'\]"):
        processed_task(ReachAroundTask(), processors)
