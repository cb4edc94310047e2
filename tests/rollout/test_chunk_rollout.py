import gymnasium as gym
import numpy as np
import torch

from robotune.rollout.chunk_rollout import ChunkRollout
from tests.rollout.toy_envs import CounterEnv

GAMMA = 0.5


def make_rollout():
    envs = gym.vector.SyncVectorEnv(
        [lambda: CounterEnv(5, terminate=False), lambda: CounterEnv(3, terminate=True)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    return envs, ChunkRollout(envs, obs_horizon=2, act_steps=2, gamma=GAMMA, seed=0)


class NumberedDecisions:
    """Decision d sends actions [10 d, 10 d + 1]; `calls` keeps the windows of each call, in order."""

    def __init__(self):
        self.count, self.calls = 0, []

    def __call__(self, obs):
        ids = np.arange(self.count, self.count + len(obs))
        self.count += len(obs)
        self.calls.append(obs.copy())
        actions = np.stack([10.0 * ids, 10.0 * ids + 1], axis=1)[:, :, None].astype(np.float32)
        return actions, {"id": torch.as_tensor(ids)}


def test_per_environment_reset_of_a_chunk_policy():
    """Env b's episode (3 steps) ends one step into its second chunk. Only env b replans at the next
    step, from its new episode's first observation; env a keeps executing its chunk meanwhile."""
    envs, rollout = make_rollout()
    decide = NumberedDecisions()
    rollout.collect(6, decide)
    env_a, env_b = envs.envs

    # Steps 0 and 2: both decide (decisions 0, 1 and 2, 3). Step 3: env b alone (decision 4), from its
    # fresh window [step 0, episode 1] repeated. Step 4: env a alone, its chunk done. Step 5: both.
    assert [len(windows) for windows in decide.calls] == [2, 2, 1, 1, 2]
    np.testing.assert_array_equal(decide.calls[2], [[[0.0, 1.0], [0.0, 1.0]]])
    # Env b dropped the rest of decision 3 (action 31) for decision 4's first action.
    assert env_b.actions == [10, 11, 30, 40, 41, 70]
    # Env a ran decision 2 to its end (20, 21) across env b's reset, then decision 5 until its own
    # episode (5 steps) was truncated, and decision 6 in its next episode.
    assert env_a.actions == [0, 1, 20, 21, 50, 60]


def test_autoreset_keeps_the_final_observation():
    envs, rollout = make_rollout()
    batch, episodes = rollout.collect(6, NumberedDecisions())

    # env b's episode (3 steps, terminated) ends inside its second chunk: that chunk ran 1 step.
    b_decisions = np.flatnonzero(batch.env == 1)
    second = b_decisions[1]
    assert batch.terminated[second] and batch.episode_end[second]
    assert batch.reward[second] == 1.0 and np.isclose(batch.discount[second], GAMMA)
    # Its next window ends in the episode's true final observation [step 3, episode 0], not the reset one.
    np.testing.assert_array_equal(batch.next_obs[second][-1], [3.0, 0.0])
    # The next episode starts with a fresh decision whose window is its first observation repeated.
    np.testing.assert_array_equal(batch.obs[b_decisions[2]], [[0.0, 1.0], [0.0, 1.0]])
    # env a's full chunks: reward 1 + γ, discount γ²; its episode (5 steps) is truncated by the first
    # step of its third chunk, which bootstraps from the final observation [step 5, episode 0], and a
    # fourth decision starts the next episode at step 6, cut by the end of the collection.
    a_decisions = np.flatnonzero(batch.env == 0)
    assert len(a_decisions) == 4
    np.testing.assert_allclose(batch.reward[a_decisions[:2]], 1 + GAMMA)
    np.testing.assert_allclose(batch.discount[a_decisions[:2]], GAMMA**2)
    assert batch.episode_end[a_decisions[2]] and not batch.terminated[a_decisions[2]]  # truncated, not terminated
    assert batch.reward[a_decisions[2]] == 1.0 and not batch.episode_end[a_decisions[3]]
    np.testing.assert_array_equal(batch.next_obs[a_decisions[2]][-1], [5.0, 0.0])
    assert sorted(episodes.returns) == [3.0, 3.0, 5.0] and sorted(episodes.lengths) == [3, 3, 5]
    # The grid lists each environment's decisions in time order.
    assert list(batch.grid[: len(a_decisions), 0]) == list(a_decisions)
    assert list(batch.grid[: len(b_decisions), 1]) == list(b_decisions)


def test_chunks_open_at_the_end_of_a_collection_are_cut_and_bootstrap():
    envs, rollout = make_rollout()
    batch, _ = rollout.collect(3, NumberedDecisions())
    a_decisions = np.flatnonzero(batch.env == 0)
    last = a_decisions[-1]  # started at step 2, ran one step before the collection ended
    assert not batch.episode_end[last] and batch.reward[last] == 1.0
    np.testing.assert_array_equal(batch.next_obs[last], [[2.0, 0.0], [3.0, 0.0]])
    # The next collection continues the same episode with a fresh decision.
    batch2, _ = rollout.collect(1, NumberedDecisions())
    np.testing.assert_array_equal(batch2.obs[np.flatnonzero(batch2.env == 0)[0]], [[2.0, 0.0], [3.0, 0.0]])


def test_async_subprocess_workers_give_the_same_rollout_as_sync():
    from robotune.rollout.vector import make_vector_env
    from tests.rollout.toy_envs import TargetTask

    def collect(mode):
        envs = make_vector_env(TargetTask(), 3, mode)
        rollout = ChunkRollout(envs, obs_horizon=1, act_steps=1, gamma=GAMMA, seed=5)
        constant = lambda obs: (np.full((len(obs), 1, 2), 0.25, np.float32), {"id": torch.zeros(len(obs))})  # noqa: E731
        batch, episodes = rollout.collect(12, constant)
        envs.close()
        return batch, episodes

    sync, sync_episodes = collect("sync")
    worker, worker_episodes = collect("async")
    np.testing.assert_array_equal(sync.obs, worker.obs)
    np.testing.assert_array_equal(sync.reward, worker.reward)
    np.testing.assert_array_equal(sync.next_obs, worker.next_obs)
    assert sync_episodes.returns == worker_episodes.returns and len(sync_episodes.returns) == 6
