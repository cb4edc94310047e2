import math

import pytest

import torch

from robotune.core.normalization import Normalizer
from robotune.plugins.gaussian import GaussianConfig, GaussianPolicy
from robotune.robots.gymnasium_task import GymnasiumTask, GymnasiumTaskConfig
from robotune.rollout.evaluation import evaluate


def test_a_gymnasium_task_without_is_success_evaluates_on_return_and_normalised_score():
    task = GymnasiumTask(GymnasiumTaskConfig(name="gymnasium", env_id="Hopper-v5", max_episode_steps=20))
    spec = task.spec
    assert spec.obs_dim == 11 and spec.action_dim == 3 and spec.max_episode_steps == 20
    torch.manual_seed(0)
    config = GaussianConfig(name="gaussian", obs_horizon=1, horizon=1, act_steps=1, hidden_dim=16, num_blocks=1)
    policy = GaussianPolicy(config, spec, Normalizer.identity(11), Normalizer(spec.action_low, spec.action_high))
    result = evaluate(policy, task, episodes=3, num_envs=2)
    assert result.success_rate is None and "success_rate" not in result.summary()
    assert result.episodes == 3 and 1 <= result.mean_length <= 20 and math.isfinite(result.mean_return)
    # D4RL's Hopper references: 100 * (R + 20.272305) / (3234.3 + 20.272305)
    assert math.isclose(result.normalized_score, 100 * (result.mean_return + 20.272305) / (3234.3 + 20.272305))


def test_an_unknown_environment_id_is_named():


    with pytest.raises(ValueError, match="task.env_id 'NoSuchEnv-v0' cannot be made"):
        GymnasiumTask(GymnasiumTaskConfig(name="gymnasium", env_id="NoSuchEnv-v0"))


def test_episode_records_aggregate_the_tasks_info_metrics(tmp_path):
    import json

    import numpy as np

    from robotune.rollout.evaluation import EpisodeMetrics
    from tests.rollout.toy_envs import TargetTask

    metrics = EpisodeMetrics({"d": "final", "c": "max", "m": "mean"})
    for d, c, m in ((3.0, 0, 1.0), (2.0, 1, 2.0), (1.0, 0, 6.0)):
        metrics.add({"d": d, "c": c, "m": m, "ignored": 9})
    assert metrics.result() == {"d_final": 1.0, "c_max": 1.0, "m_mean": 3.0}
    with pytest.raises(ValueError, match="info metric 'd': aggregation must be one of"):
        EpisodeMetrics({"d": "median"})

    class RewardTask(TargetTask):  # TargetEnv reports no per-step info but is_success
        info_metrics = {"is_success": "mean"}

    task = RewardTask()
    torch.manual_seed(0)
    config = GaussianConfig(name="gaussian", obs_horizon=1, horizon=1, act_steps=1, hidden_dim=8, num_blocks=1)
    policy = GaussianPolicy(config, task.spec, Normalizer.identity(2), Normalizer(task.spec.action_low, task.spec.action_high))
    result = evaluate(policy, task, episodes=3, num_envs=2)
    result.write_records(tmp_path / "episodes.jsonl")
    records = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in records] == [0, 1, 2] and [r["seed"] for r in records] == [100000, 100001, 100002]
    assert all(r["length"] == 5 and "is_success_mean" in r for r in records)
    assert result.summary()["is_success_mean"] == pytest.approx(np.mean([r["is_success_mean"] for r in records]))
    assert result.success_rate == np.mean([r["success"] for r in records])
