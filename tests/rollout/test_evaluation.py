import math

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
    import pytest

    with pytest.raises(ValueError, match="task.env_id 'NoSuchEnv-v0' cannot be made"):
        GymnasiumTask(GymnasiumTaskConfig(name="gymnasium", env_id="NoSuchEnv-v0"))
