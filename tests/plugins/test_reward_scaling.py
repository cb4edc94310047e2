"""PPO's running reward scaling (DPPO, ResiP): rewards divided by the running std of each environment's discounted return."""

import numpy as np

from robotune.plugins.ppo import RunningReturnScaler
from robotune.rollout.chunk_rollout import DecisionBatch


def batch(reward, discount, episode_end, grid) -> DecisionBatch:
    n = len(reward)
    empty = np.zeros((n, 1, 1), np.float32)
    return DecisionBatch(
        obs=empty, next_obs=empty, reward=np.asarray(reward, np.float32), discount=np.asarray(discount, np.float32),
        terminated=np.zeros(n, bool), episode_end=np.asarray(episode_end, bool), env=np.zeros(n, np.int64),
        grid=np.asarray(grid, np.int64), payload={},
    )


def test_returns_accumulate_per_environment_reset_at_episode_ends_and_carry_across_batches():
    scaler = RunningReturnScaler(num_envs=2, clip=100.0)
    # env 0: decisions 0, 2, 3 (an episode ends at 2); env 1: decisions 1, 4 (none ends)
    first = batch([1.0, 2.0, 3.0, 4.0, 5.0], [0.5] * 5, [False, False, True, False, False], [[0, 1], [2, 4], [3, -1]])
    returns = np.array([1.0, 2.0, 0.5 * 1 + 3, 0.5 * 2 + 5, 4.0])  # in grid order: (0,1), (2,4), (3)
    scaled = scaler.scale(first)
    np.testing.assert_allclose(scaled, first.reward / np.sqrt(returns.var() + 1e-8), rtol=1e-5)
    second = batch([2.0, 1.0], [0.5, 0.5], [False, False], [[0, 1]])
    scaler.scale(second)
    both = np.concatenate([returns, [0.5 * 4 + 2, 0.5 * 6 + 1]])  # env 0 continues from 4, env 1 from 6
    assert scaler.count == 7 and np.isclose(scaler.mean, both.mean()) and np.isclose(scaler.var, both.var())
    restored = RunningReturnScaler(num_envs=2, clip=100.0)
    restored.load_state_dict(scaler.state_dict())
    np.testing.assert_array_equal(restored.scale(second), scaler.scale(second))


def test_scaled_rewards_are_clipped():
    scaler = RunningReturnScaler(num_envs=1, clip=2.0)
    scaled = scaler.scale(batch([0.0, 0.0, 100.0], [1.0] * 3, [False] * 3, [[0], [1], [2]]))
    assert scaled.max() == 2.0
