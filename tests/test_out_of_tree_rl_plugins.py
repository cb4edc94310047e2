"""A separately installed package registers a critic and a regularizer through the `robotune.plugins`
entry point; both are selected from config and used by a SAC run, and their calls are counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.core.plugin_packages import write_distribution

PACKAGE = "robotune-test-rl-plugins"
MODULE = "robotune_test_rl_plugins"

SOURCE = '''
"""A critic that loops over plain MLP members, and a regularizer that pulls actions toward zero."""
from dataclasses import dataclass

import torch
from torch import nn

from robotune.core.critic import Critic, CriticConfig
from robotune.core.regularizer import Regularizer, RegularizerConfig
from robotune.core.registry import register


@register("critic", "looped_mlp")
class LoopedCritic(Critic):
    def __init__(self, config, obs_dim, action_dim):
        super().__init__(config, obs_dim, action_dim)
        self.members = nn.ModuleList(
            nn.Sequential(nn.Linear(obs_dim + action_dim, 32), nn.ReLU(), nn.Linear(32, 1))
            for _ in range(config.num_members)
        )
        self.register_buffer("q_calls", torch.zeros((), dtype=torch.int64))

    def value(self, obs):
        raise NotImplementedError("a Q critic")

    def q_value(self, obs, action):
        self.q_calls += 1
        x = torch.cat([obs, action], dim=-1)
        return torch.stack([member(x).squeeze(-1) for member in self.members])


@dataclass
class ActionL2Config(RegularizerConfig):
    weight: float = 0.1


@register("regularizer", "action_l2")
class ActionL2(Regularizer):
    config_class = ActionL2Config

    def __init__(self, config, obs_dim, action_dim):
        super().__init__(config, obs_dim, action_dim)
        self.register_buffer("calls", torch.zeros(3, dtype=torch.int64))  # actor, critic, update

    def actor_term(self, batch, policy_action, q_value):
        self.calls[0] += 1
        assert policy_action.shape == (batch["obs"].shape[0], self.action_dim) and q_value.shape == policy_action.shape[:1]
        return self.config.weight * policy_action.square().mean(), {"action_l2_actor_calls": float(self.calls[0])}

    def critic_term(self, batch, next_action):
        self.calls[1] += 1
        return torch.zeros(next_action.shape[0]), {"action_l2_critic_calls": float(self.calls[1])}

    def update(self, batch):
        self.calls[2] += 1
        return {"action_l2_updates": float(self.calls[2])}
'''


@pytest.fixture
def site_with_package(tmp_path: Path) -> Path:
    """The package installed into a directory of its own, put on the subprocess's PYTHONPATH."""
    site = tmp_path / "site"
    write_distribution(site, PACKAGE, "0.1.0", {"rl_parts": MODULE}, {f"{MODULE}/__init__.py": SOURCE})
    return site


def test_installed_critic_and_regularizer_are_used_by_sac(site_with_package, tmp_path):
    run_dir = tmp_path / "run"
    steps, learning_starts = 120, 40
    train = subprocess.run(
        [
            sys.executable, "-m", "robotune.cli", "train", "task=gymnasium", "task.env_id=Pendulum-v1",
            "algo=sac", "policy=gaussian_sac", "policy.hidden_dim=32", "critic=looped_mlp", "regularizer=[action_l2]",
            "regularizer.action_l2.weight=0.5", f"algo.steps={steps}", f"algo.learning_starts={learning_starts}",
            "algo.batch_size=32", "algo.buffer_size=500", f"run_dir={run_dir}", "eval.episodes=1", "eval.num_envs=1",
            "logger=quiet", "logger.log_every=20",
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site_with_package), os.environ.get("PYTHONPATH", "")])},
    )
    assert train.returncode == 0, train.stderr + train.stdout
    updates = steps - learning_starts + 1
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if "train/action_l2_updates" in r][-1]
    assert last["step"] == steps and last["train/action_l2_updates"] == updates
    assert last["train/action_l2_actor_calls"] == updates and last["train/action_l2_critic_calls"] == updates
    checkpoint = Path(json.loads((run_dir / "summary.json").read_text())["checkpoint"])
    state = load_file(str(checkpoint / "training_state.safetensors"))
    q_calls = [v for k, v in state.items() if k.endswith("critic.q_calls") and "target" not in k]
    assert len(q_calls) == 1 and int(q_calls[0]) == 2 * updates  # the critic loss and the actor loss
    config = (checkpoint / "config.yaml").read_text()
    assert "looped_mlp" in config and "action_l2" in config
