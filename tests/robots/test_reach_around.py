from __future__ import annotations

import numpy as np
import pytest

from robotune.core import registry
from robotune.robots.reach_around.robot import PlanarArmKinematics
from robotune.robots.reach_around.task import (
    OBS_NAMES,
    ReachAroundConfig,
    ReachAroundEnv,
    ReachAroundExpert,
    ReachAroundTask,
)


@pytest.fixture(scope="module")
def task() -> ReachAroundTask:
    return ReachAroundTask(ReachAroundConfig())


def run_episode(env: ReachAroundEnv, experts: list[ReachAroundExpert], seed: int) -> dict:
    """Execute the mean action of `experts` (one expert: just its action) until the episode ends."""
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for expert in experts:
        expert.reset(obs, rng)
    for step in range(1, env.max_episode_steps + 1):
        action = np.mean([expert.act(obs) for expert in experts], axis=0)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return {**info, "length": step, "side": experts[0].side}


def test_registry_finds_the_task(task: ReachAroundTask) -> None:
    assert registry.get("task", "reach_around") is ReachAroundTask


def test_env_spaces_match_the_spec(task: ReachAroundTask) -> None:
    spec, env = task.spec, task.make_env()
    assert spec.obs_names == OBS_NAMES
    assert env.observation_space.shape == (spec.obs_dim,)
    assert np.allclose(env.action_space.low, spec.action_low)
    assert np.allclose(env.action_space.high, spec.action_high)
    assert spec.robot is not None and spec.robot.joint_names == ("shoulder", "elbow")
    assert spec.robot.command_interface == "position"
    assert env.substeps * env.model.opt.timestep == pytest.approx(1.0 / spec.control_rate_hz)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert info["is_success"] is False
    _, _, _, _, info = env.step(env.action_space.sample())
    assert isinstance(info["is_success"], bool)


def test_kinematics_round_trip(task: ReachAroundTask) -> None:
    env = task.make_env()
    kinematics = PlanarArmKinematics(env.model)
    env.reset(seed=3)
    assert np.allclose(kinematics.forward(env.data.qpos), env.fingertip(), atol=1e-9)
    xy = np.array([0.4, 0.25])
    assert np.allclose(kinematics.forward(kinematics.inverse(xy)), xy, atol=1e-9)


def test_reset_with_a_seed_is_deterministic(task: ReachAroundTask) -> None:
    env = task.make_env()
    actions = [env.action_space.sample() for _ in range(20)]
    trajectories = []
    for _ in range(2):
        obs, _ = env.reset(seed=7)
        trajectories.append([obs] + [env.step(a)[0] for a in actions])
    assert np.array_equal(np.array(trajectories[0]), np.array(trajectories[1]))
    assert not np.array_equal(env.reset(seed=8)[0], trajectories[0][0])


def test_goal_can_be_set_explicitly(task: ReachAroundTask) -> None:
    env = task.make_env()
    obs, _ = env.reset(seed=0, options={"goal": (0.5, 0.35)})
    assert np.allclose(obs[4:6], (0.5, 0.35))
    env.set_goal(np.array([0.45, 0.3]))
    assert np.allclose(env.step(obs[:2])[0][4:6], (0.45, 0.3))


def test_expert_succeeds_in_both_modes(task: ReachAroundTask) -> None:
    env, expert = task.make_env(), task.make_expert()
    results = [run_episode(env, [expert], seed) for seed in range(40)]
    success_rate = np.mean([r["is_success"] for r in results])
    inner_share = np.mean([r["side"] == "inner" for r in results])
    assert success_rate >= 0.95
    assert 0.25 <= inner_share <= 0.75
    # ~2x margin between what the expert needs and the time limit
    assert max(r["length"] for r in results) <= env.max_episode_steps * 0.6


def test_expert_stays_within_velocity_limits(task: ReachAroundTask) -> None:
    env = task.make_env()
    limit = task.spec.robot.max_velocity
    for side in ReachAroundExpert.SIDES:
        expert = task.make_expert(side)
        obs, _ = env.reset(seed=1)
        expert.reset(obs, np.random.default_rng(1))
        targets = np.array([expert.act(obs) for _ in range(60)])
        target_velocity = np.abs(np.diff(targets, axis=0)) * task.spec.control_rate_hz
        assert (target_velocity <= limit).all(), side


def test_expert_noise_perturbs_targets_reproducibly(task: ReachAroundTask) -> None:
    """Noise is drawn from the recorder's generator: the same seed gives the same imperfect demonstration."""
    env = task.make_env()
    obs, _ = env.reset(seed=3)
    noisy_task = ReachAroundTask(ReachAroundConfig(expert_noise=0.1))

    def targets(expert: ReachAroundExpert, seed: int) -> np.ndarray:
        expert.reset(obs, np.random.default_rng(seed))
        return np.array([expert.act(obs) for _ in range(20)])

    clean = targets(task.make_expert("inner"), 0)
    noisy = targets(noisy_task.make_expert("inner"), 0)
    deviation = noisy - clean
    assert 0.05 < deviation.std() < 0.15  # about the configured 0.1 rad
    np.testing.assert_array_equal(noisy, targets(noisy_task.make_expert("inner"), 0))
    assert not np.array_equal(noisy, targets(noisy_task.make_expert("inner"), 1))


def test_negative_expert_noise_is_refused() -> None:
    with pytest.raises(ValueError, match="task.expert_noise"):
        ReachAroundTask(ReachAroundConfig(expert_noise=-0.1)).make_expert()


def test_averaging_the_two_modes_hits_the_obstacle(task: ReachAroundTask) -> None:
    env = task.make_env()
    for seed in range(10):
        both = [task.make_expert("inner"), task.make_expert("outer")]
        result = run_episode(env, both, seed)
        assert result["collision"] and not result["is_success"], f"seed {seed}: {result}"
        # it heads straight for the post: contact comes before either expert reaches its waypoint
        assert result["length"] <= 25, f"seed {seed}: {result}"
