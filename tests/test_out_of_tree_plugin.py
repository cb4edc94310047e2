"""A separately installed package registers a policy through the `robotune.plugins` entry point and
is trained and evaluated from config, with no change to robotune."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = "robotune-test-linear-policy"
MODULE = "robotune_test_linear_policy"

POLICY_SOURCE = '''
"""A linear action-chunk policy: the smallest real plugin a user could write."""
from dataclasses import dataclass

import torch
from torch import nn

from robotune.core.policy import Policy, PolicyConfig
from robotune.core.registry import register


@dataclass
class LinearChunkConfig(PolicyConfig):
    horizon: int = 4
    act_steps: int = 2


@register("policy", "linear_chunk")
class LinearChunkPolicy(Policy):
    config: LinearChunkConfig  # registration derives config_class from it

    def __init__(self, config, spec, obs_normalizer, action_normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        self.linear = nn.Linear(config.obs_horizon * spec.obs_dim, config.horizon * spec.action_dim)

    def compute_loss(self, obs_norm, action_norm, generator):
        loss = nn.functional.mse_loss(self._predict(obs_norm), action_norm)
        return loss, {}

    def sample_chunk_norm(self, obs_norm, deterministic, generator):
        return self._predict(obs_norm)

    def _predict(self, obs_norm):
        return self.linear(obs_norm.flatten(1)).view(-1, self.config.horizon, self.action_dim)
'''


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def installed_plugin_package(tmp_path: Path):
    root = tmp_path / PACKAGE
    (root / MODULE).mkdir(parents=True)
    (root / MODULE / "__init__.py").write_text(POLICY_SOURCE)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{PACKAGE}"
            version = "0.3.0"

            [project.entry-points."robotune.plugins"]
            linear_chunk = "{MODULE}"
            """
        )
    )
    result = pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(root))
    assert result.returncode == 0, result.stderr
    yield
    pip("uninstall", "-y", PACKAGE)


def robotune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "robotune.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_installed_package_policy_trains_and_evaluates(installed_plugin_package, tmp_path):
    listing = robotune("plugins", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "linear_chunk" in listing.stdout and f"{PACKAGE} 0.3.0" in listing.stdout

    run_dir = tmp_path / "run"
    train = robotune(
        "train",
        "policy=linear_chunk",
        "policy.horizon=6",  # with PolicyConfig's act_steps=8 instead of LinearChunkConfig's 2, this fails
        "algo.steps=200",
        "algo.batch_size=64",
        "data.num_episodes=10",
        f"data.cache_dir={tmp_path / 'data'}",
        f"run_dir={run_dir}",
        "eval.episodes=4",
        "eval.num_envs=4",
        "logger=quiet",
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr + train.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["policy"] == "linear_chunk" and summary["eval_episodes"] == 4
    losses = [json.loads(line)["train/loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "train/loss" in line]
    assert losses[-1] < 0.75 * losses[0]  # first record is at step 50, after warm-up
    meta = json.loads((Path(summary["checkpoint"]) / "meta.json").read_text())
    assert meta["plugins"]["policy"]["source"] == f"{PACKAGE} 0.3.0"

    # Rebuilt from the checkpoint alone, the policy replays the run's final evaluation exactly: same
    # episodes, same batching, so any lost weight, normaliser or config value would change the returns.
    evaluation = robotune("eval", f"checkpoint={run_dir}", "episodes=4", "num_envs=4", cwd=tmp_path)
    assert evaluation.returncode == 0, evaluation.stderr
    result = json.loads(evaluation.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 4
    assert result["mean_return"] == summary["eval_mean_return"]
    assert result["success_rate"] == summary["eval_success_rate"]
