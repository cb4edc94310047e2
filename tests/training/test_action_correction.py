"""A regularizer that corrects actions at inference time ships inside the checkpoint and is applied on load."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robotune.core.checkpoint import load_checkpoint
from robotune.core.registry import register
from robotune.core.regularizer import ActionCorrectedPolicy, Regularizer, RegularizerConfig
from robotune.rollout.evaluation import evaluate
from robotune.core.task import build_task
from robotune.training.loop import train
from tests.helpers import compose_config

SHIFT = -0.5


@dataclass
class ShiftConfig(RegularizerConfig):
    weight: float = 0.0


@register("regularizer", "test_action_shift")
class ActionShift(Regularizer):
    """Learns nothing useful: `update` sets a per-dimension shift that `correct_action` adds."""

    config: ShiftConfig
    corrects_actions = True

    def __init__(self, config, obs_dim, action_dim):
        super().__init__(config, obs_dim, action_dim)
        self.register_buffer("shift", torch.zeros(action_dim))

    def actor_term(self, batch, policy_action, q_value):
        return torch.zeros(()), {}

    def update(self, batch):
        self.shift.fill_(SHIFT)
        return {}

    def correct_action(self, obs, action):
        return action + self.shift


def test_a_correcting_regularizer_ships_in_the_checkpoint(tmp_path):
    cfg = compose_config("train", [
        "task=gymnasium", "task.env_id=Pendulum-v1", "algo=sac", "policy=gaussian_sac", "policy.hidden_dim=16",
        "critic.hidden_dims=[16]", "regularizer=[test_action_shift]", "algo.steps=30", "algo.learning_starts=20",
        "algo.batch_size=8", "algo.buffer_size=100", f"run_dir={tmp_path / 'run'}", "eval.episodes=1", "eval.num_envs=1",
        "logger=quiet",
    ])
    train(cfg)
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint.meta["action_correctors"] == ["test_action_shift"]
    policy = checkpoint.policy
    assert isinstance(policy, ActionCorrectedPolicy)
    obs = torch.randn(4, 1, 3)
    base = policy.policy.predict_chunk(obs, deterministic=True)
    # Pendulum's torque is in [-2, 2]: a normalised shift of -0.5 moves it by -1, clamped to the bounds.
    expected = (base + SHIFT * 2.0).clamp(-2.0, 2.0)
    torch.testing.assert_close(policy.predict_chunk(obs, deterministic=True), expected)
    torch.testing.assert_close(policy.export_for_inference().predict_chunk(obs, deterministic=True), expected, rtol=0, atol=1e-4)
    result = evaluate(policy, build_task(checkpoint.config.task), episodes=1, num_envs=1)
    assert result.episodes == 1
