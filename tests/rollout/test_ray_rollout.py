"""Ray rollout workers (`runtime=ray`): the gathered batch equals the local runner's, a killed worker is
replaced without ending the run, and `robotune train runtime=ray` runs to completion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robotune.core.registry import load_plugins
from robotune.core.task import build_task
from robotune.plugins import ppo
from robotune.processing.pipeline import ObservationProcessors
from robotune.rollout.chunk_rollout import ChunkRollout, Decider, DecisionBatch
from robotune.rollout.ray_rollout import (
    RayChunkRollout,
    RayRuntimeConfig,
    RolloutWorker,
    merge_collections,
    module_recipe,
    module_weights,
)
from robotune.rollout.vector import make_vector_env
from robotune.training.loop import fresh_policy, train
from tests.helpers import compose_config

ray = pytest.importorskip("ray")

TASK = {"name": "reach_around"}
NUM_ENVS, OBS_HORIZON, ACT_STEPS, GAMMA, SEED, STEPS = 3, 2, 4, 0.99, 7, 30
IDENTITY = ObservationProcessors.identity(build_task(TASK).spec.obs_names).to_json()


def elementwise_rule(modules, obs, generator):
    """Actions that depend on each environment's own window only (no batch-size effects), so any split of
    the environments over workers must reproduce the local rollout exactly. The payload is the window's sum."""
    policy = modules["policy"]
    window = torch.as_tensor(obs)
    chunk = torch.tanh(3.0 * window[:, -1:, : policy.action_dim]).repeat(1, ACT_STEPS, 1)
    return policy.action_normalizer.unnormalize(chunk).numpy(), {"window_sum": window.sum((1, 2))}


@pytest.fixture(scope="module")
def policy():
    load_plugins()
    cfg = compose_config("train", ["policy=gaussian", f"policy.obs_horizon={OBS_HORIZON}", f"policy.act_steps={ACT_STEPS}"])
    return fresh_policy(cfg, build_task(TASK), None).eval()


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A Ray instance for this module; its workers inherit the environment as it is now, kill marker included."""
    os.environ["ROBOTUNE_TEST_KILL_MARKER"] = str(tmp_path_factory.mktemp("ray") / "killed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    del os.environ["ROBOTUNE_TEST_KILL_MARKER"]


def local_collection(policy) -> DecisionBatch:
    rollout = ChunkRollout(make_vector_env(build_task(TASK), NUM_ENVS, "sync"), OBS_HORIZON, ACT_STEPS, GAMMA, seed=SEED)
    batch, _ = rollout.collect(STEPS, Decider(elementwise_rule, {"policy": policy}, torch.Generator()))
    rollout.close()
    return batch


def assert_same_decisions(actual: DecisionBatch, expected: DecisionBatch) -> None:
    """Equal environment by environment, in time order (the batches may interleave environments differently)."""
    assert actual.grid.shape == expected.grid.shape
    for env in range(NUM_ENVS):
        mine, theirs = actual.grid[:, env][actual.grid[:, env] >= 0], expected.grid[:, env][expected.grid[:, env] >= 0]
        assert len(mine) == len(theirs) > 0
        for name in ("obs", "next_obs", "reward", "discount", "terminated", "episode_end", "env"):
            np.testing.assert_array_equal(getattr(actual, name)[mine], getattr(expected, name)[theirs], err_msg=f"{name}, env {env}")
        torch.testing.assert_close(actual.payload["window_sum"][mine], expected.payload["window_sum"][theirs], rtol=0, atol=0)


def test_worker_collections_merge_into_the_local_batch(policy):
    """Environments split 2 + 1 over two workers (run in this process), gathered, equal one local rollout."""
    recipes, weights = {"policy": module_recipe(policy)}, module_weights({"policy": policy})
    parts = []
    for offset, share in ((0, 2), (2, 1)):
        worker = RolloutWorker(TASK, IDENTITY, offset, share, "sync", OBS_HORIZON, ACT_STEPS, GAMMA, SEED, recipes, threads=1)
        parts.append(worker.collect(STEPS, elementwise_rule, weights, sample_seed=0))
    merged, stats = merge_collections(parts, [0, 2], torch.device("cpu"))
    assert_same_decisions(merged, local_collection(policy))
    assert len(stats.returns) == sum(len(p["episodes"][0]) for p in parts)


def test_ray_workers_match_local_and_a_killed_worker_is_replaced(policy, local_ray):
    rollout = RayChunkRollout(TASK, NUM_ENVS, "sync", OBS_HORIZON, ACT_STEPS, GAMMA, SEED, RayRuntimeConfig(num_workers=2), IDENTITY)
    decide = Decider(elementwise_rule, {"policy": policy}, torch.Generator().manual_seed(0))
    try:
        first, _ = rollout.collect(STEPS, decide)
        assert_same_decisions(first, local_collection(policy))

        os.kill(ray.get(rollout.workers[0].pid.remote()), signal.SIGKILL)  # mid-run: between two collections
        second, _ = rollout.collect(STEPS, decide)
        assert rollout.worker_restarts == 1
        assert second.grid.shape[1] == NUM_ENVS and (second.grid[0] >= 0).all()  # every environment collected
        assert sum(len(second.grid[:, e][second.grid[:, e] >= 0]) for e in range(NUM_ENVS)) == len(second)
    finally:
        rollout.close()
    assert ray.is_initialized()  # a Ray instance the rollout did not start is left running


def rule_that_kills_its_worker_once(modules, obs, generator):
    """PPO's decision rule, except that the first call anywhere (marked by a file) SIGKILLs its own worker process."""
    marker = Path(os.environ["ROBOTUNE_TEST_KILL_MARKER"])
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return ppo.sample_decisions(modules, obs, generator)


def test_a_worker_killed_mid_run_is_replaced_and_the_run_completes(tmp_path, local_ray, monkeypatch, caplog):
    marker = Path(os.environ["ROBOTUNE_TEST_KILL_MARKER"])
    monkeypatch.setattr(ppo, "sample_decisions", rule_that_kills_its_worker_once)
    summary = train(compose_config("train", [*ppo_overrides(tmp_path, "ray"), "runtime.num_workers=2"]))
    assert marker.exists()  # a worker died in the middle of the first collection
    assert "starting a replacement and collecting its share again" in caplog.text
    assert summary["env_steps"] == 2 * 2 * 16


def test_more_workers_than_the_cluster_has_cpus_is_a_clear_error(local_ray):
    with pytest.raises(ValueError, match="asks for 3 workers x 1.0 CPUs, but the Ray cluster has 2 CPUs"):
        RayChunkRollout(TASK, NUM_ENVS, "sync", OBS_HORIZON, ACT_STEPS, GAMMA, SEED, RayRuntimeConfig(num_workers=3), IDENTITY)


def ppo_overrides(tmp_path, runtime: str) -> list[str]:
    return [
        "policy=gaussian", "algo=ppo", "algo.steps=2", "algo.num_envs=2", "algo.rollout_steps=16", "algo.epochs=1",
        f"runtime={runtime}", f"run_dir={tmp_path / runtime}", "eval.episodes=2", "eval.num_envs=2", "eval.video=0",
        "logger=quiet", "checkpoint_every=1",
    ]


def test_train_runs_to_completion_on_ray_workers(tmp_path, local_ray):
    """The workers rebuild the task with the run's observation processors (sin/cos of one angle here):
    without them their observations would not fit the policy."""
    overrides = [*ppo_overrides(tmp_path, "ray"), "runtime.num_workers=2", "processors.angle_keys=[shoulder.pos]"]
    summary = train(compose_config("train", overrides))
    assert summary["env_steps"] == 2 * 2 * 16
    assert (tmp_path / "ray" / "checkpoints").is_dir()


def test_runtime_ray_refuses_an_algorithm_without_chunk_rollouts(tmp_path):
    overrides = ["policy=gaussian", "algo=sac", "runtime=ray", f"run_dir={tmp_path}", "logger=quiet"]
    with pytest.raises(ValueError, match="runtime=ray runs the rollouts of on-policy RL"):
        train(compose_config("train", overrides))


def test_a_bad_ray_setting_is_one_line_before_training(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "robotune.cli", "train", "algo=ppo", "policy=gaussian", "runtime=ray", "runtime.num_workers=0",
         f"run_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == "robotune train: invalid config 'runtime': runtime.num_workers must be >= 1, got 0"
    assert not (tmp_path / "run" / "checkpoints").exists()
