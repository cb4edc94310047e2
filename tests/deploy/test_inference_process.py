"""The planner's child-process inference returns what in-thread inference returns, and fails loudly."""

import numpy as np
import pytest

from robotune.core.checkpoint import load_checkpoint
from robotune.training.loop import train
from robotune.deploy.inference_process import InferenceProcess, InferenceProcessError
from robotune.deploy.planner import ChunkPlanner
from tests.helpers import compose_config, tiny_train_overrides


def test_remote_planner_matches_the_thread_planner(tmp_path):
    train(compose_config("train", tiny_train_overrides(tmp_path, policy="diffusion", steps=10)))
    checkpoint = load_checkpoint(tmp_path / "run")
    policy, cfg = checkpoint.policy.eval(), checkpoint.policy.config
    remote = InferenceProcess(str(checkpoint.path), (cfg.obs_horizon, policy.obs_dim),
                              (cfg.horizon, checkpoint.task_spec.action_dim), deterministic=True, seed=3)
    planners = [ChunkPlanner(policy, lead_ticks=1, blend_steps=0, seed=3),
                ChunkPlanner(policy, lead_ticks=1, blend_steps=0, seed=3, remote=remote)]
    try:
        rng = np.random.default_rng(0)
        for tick in range(3 * cfg.act_steps):
            obs = rng.normal(size=policy.obs_dim).astype(np.float32)
            actions = []
            for planner in planners:
                planner.observe(obs)
                actions.append(planner.action(tick, wait=True))  # wait: deterministic, as a stepped run
            if actions[0] is None:
                assert actions[1] is None
            else:
                np.testing.assert_allclose(actions[0], actions[1], atol=1e-5)
        assert planners[0].stats.plans == planners[1].stats.plans >= 3
    finally:
        for planner in planners:
            planner.close()


def test_a_bad_checkpoint_is_reported_with_the_childs_error(tmp_path):
    with pytest.raises(InferenceProcessError, match="failed to start"):
        InferenceProcess(str(tmp_path / "missing"), (2, 6), (16, 2), start_timeout_s=60.0)
