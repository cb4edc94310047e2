"""The README's task plugin, installed as its own package, records demonstrations, trains and evaluates."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robotune.core.task import build_task
from robotune.training.demonstrations import record_demonstrations
from tests.core.plugin_packages import isolated_registry, readme_python_block, write_distribution  # noqa: F401
from tests.helpers import tiny_train_overrides


def install_point_reach(site: Path) -> None:
    """`my_package` with the README's `point_reach.py`, declared under the robotune.plugins entry point."""
    write_distribution(
        site, "my-package", "0.1.0", {"point_reach": "my_package.point_reach"},
        {"my_package/__init__.py": "", "my_package/point_reach.py": readme_python_block("# my_package/point_reach.py")},
    )


@pytest.fixture
def point_reach(isolated_registry, tmp_path, monkeypatch):
    install_point_reach(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("my_package.point_reach")
    return build_task({"name": "point_reach"})


def test_spec_matches_the_environment_and_the_expert_succeeds(point_reach):
    spec, env = point_reach.spec, point_reach.make_env()
    assert env.observation_space.shape == (spec.obs_dim,)
    assert tuple(env.action_space.low) == spec.action_low and tuple(env.action_space.high) == spec.action_high
    dataset = record_demonstrations(point_reach, num_episodes=10, seed=0)
    assert len(dataset) == 10  # every attempt succeeded: recording keeps successful episodes only
    assert all(len(episode) < spec.max_episode_steps for episode in dataset.episodes)


def test_two_demos_per_start_repeat_a_deterministic_experts_episode(point_reach):
    """What the README warns about: `data.demos_per_start=2` records each episode twice for this expert."""
    episodes = record_demonstrations(point_reach, num_episodes=4, seed=0, demos_per_start=2).episodes
    np.testing.assert_array_equal(episodes[0].action, episodes[1].action)
    np.testing.assert_array_equal(episodes[2].obs, episodes[3].obs)
    assert not np.array_equal(episodes[1].obs[0], episodes[2].obs[0])  # a new start


def test_trains_and_evaluates_from_the_command_line(tmp_path):
    site = tmp_path / "site"
    install_point_reach(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}
    overrides = tiny_train_overrides(tmp_path, policy="gaussian", steps=300)
    overrides = [o for o in overrides if not o.startswith(("data.num_episodes=", "eval.episodes=", "eval.num_envs="))]
    result = subprocess.run(
        [sys.executable, "-m", "robotune.cli", "train", "task=point_reach", "data.demos_per_start=1",
         "data.num_episodes=20", "eval.episodes=20", "eval.num_envs=10", *overrides],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["task"] == "point_reach" and summary["eval_episodes"] == 20
    # Measured: 50 %; after a single step, 10 % (the goals that start close by).
    assert summary["eval_success_rate"] >= 0.3
    meta = json.loads((Path(summary["checkpoint"]) / "meta.json").read_text())
    assert meta["plugins"]["task"]["source"] == "my-package 0.1.0"
