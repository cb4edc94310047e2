"""`transport=sim` end to end: the runner, planner and safety layer stepping an environment directly."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from robotune.deploy.observation import ObservationError
from robotune.deploy.planner import ChunkPlanner
from robotune.deploy.runner import PolicyRunner, RunnerConfig
from robotune.deploy.safety import SafetyConfig
from robotune.deploy.stepped_transport import SteppedEnvTransport
from robotune.deploy.task_env_robot import TaskEnvRobot
from tests.deploy.fakes import ARM, TASK, FirstOrderArmEnv, GoalPolicy


def run_episodes(policy, episodes=5, lead_ticks=1, blend_steps=2, task=TASK, plan_on_tick=None):
    robot = TaskEnvRobot(FirstOrderArmEnv(), task, ARM, seed=3, episodes=episodes)
    transport = SteppedEnvTransport(robot)
    config = RunnerConfig(rate_hz=20.0, lead_ticks=lead_ticks, blend_steps=blend_steps, safety=SafetyConfig(warmup_ticks=0, ramp_speed=None),
                          plan_on_tick=plan_on_tick)
    runner = PolicyRunner(policy, task, transport, config, observation_topics=transport.observation_topics())
    runner.configure()
    runner.activate()
    runner.run_stepped(max_ticks=episodes * task.max_episode_steps + 10, until=lambda: robot.finished)
    stats = runner.stats()
    runner.deactivate()
    runner.shutdown()
    return robot.summary(), stats


@pytest.mark.parametrize("lead_ticks,plan_on_tick", [(0, None), (1, False), (1, True), (2, False)])
def test_goal_policy_succeeds_through_the_stepped_transport(lead_ticks, plan_on_tick):
    summary, stats = run_episodes(GoalPolicy(), lead_ticks=lead_ticks, plan_on_tick=plan_on_tick)
    assert summary["episodes"] == 5
    assert summary["success_rate"] == 1.0
    assert summary["commands_outside_limits"] == 0 and summary["invalid_commands"] == 0
    assert stats["latched"] is None and stats["planner"]["plans"] > 5
    if plan_on_tick is not None:
        assert stats["planner"]["on_tick"] is plan_on_tick


def test_runner_plans_on_tick_when_warm_up_plans_fit_half_a_period():
    _, stats = run_episodes(GoalPolicy(), episodes=1)  # microsecond plans against a 50 ms period
    assert stats["planner"]["on_tick"] is True and stats["planner"]["warmup_plan_ms"] < 25.0


def test_nan_policy_latches_and_never_commands_outside_limits():
    summary, stats = run_episodes(GoalPolicy(nan_after=2), episodes=2)
    assert stats["latched"] == "fault" and "invalid action" in stats["latch_reason"]
    assert summary["commands_outside_limits"] == 0 and summary["invalid_commands"] == 0


def test_unknown_observation_name_is_reported_at_construction():
    from dataclasses import replace

    from robotune.deploy.observation import ArrayTopic

    task = replace(TASK, obs_names=TASK.obs_names[:-1] + ("wrist.pos",))
    robot = TaskEnvRobot(FirstOrderArmEnv(), task, ARM, episodes=1)
    goal_only = {"goal": ArrayTopic("goal", "/goal", ("x", "y"))}
    with pytest.raises(ObservationError, match="'wrist.pos'.*entry 5"):
        PolicyRunner(GoalPolicy(), task, SteppedEnvTransport(robot), RunnerConfig(rate_hz=20.0), observation_topics=goal_only)


def test_planner_without_lead_matches_open_loop_chunking():
    """lead_ticks=0 and no blending executes act_steps of each chunk, replanning every act_steps ticks."""
    policy = GoalPolicy()
    planner = ChunkPlanner(policy, lead_ticks=0, blend_steps=0)
    for tick in range(12):
        planner.observe(np.array([0, 0, 0, 0, tick, -tick], dtype=np.float32))
        action = planner.action(tick)
        plan_tick = tick - tick % policy.config.act_steps
        np.testing.assert_allclose(action, [plan_tick, -plan_tick])
    assert planner.stats.plans == 3


@pytest.mark.parametrize("on_tick", [False, True])
def test_planner_with_lead_uses_aligned_entries_and_blends(on_tick):
    policy = GoalPolicy()
    planner = ChunkPlanner(policy, lead_ticks=1, blend_steps=1)
    planner.on_tick = on_tick
    actions = []
    for tick in range(10):
        planner.observe(np.array([0, 0, 0, 0, tick, 0], dtype=np.float32))
        actions.append(planner.action(tick, wait=not on_tick))
        planner.run_pending()  # what the runner does after sending; a no-op for the thread
    # Planning on the tick never starts the planner thread; otherwise that thread computed the plans
    # and close() stops it.
    worker = planner._worker
    if on_tick:
        assert worker is None and not any(t.name == "chunk-planner" for t in threading.enumerate())
    else:
        assert worker is not None and worker.is_alive()
    planner.close()
    assert planner.stats.plans == 3
    assert worker is None or not worker.is_alive()
    # Plans at ticks 0, 4, 8; each covers ticks t+1.. ; the first tick has no plan yet.
    assert actions[0] is None
    assert [a[0] for a in actions[1:5]] == [0, 0, 0, 0]
    assert actions[5][0] == pytest.approx(2.0)  # blended: (old 0 + new 4) / 2
    assert [a[0] for a in actions[6:9]] == [4, 4, 4]


def test_missing_observation_topic_is_reported_at_construction():
    robot = TaskEnvRobot(FirstOrderArmEnv(), TASK, ARM, episodes=1)
    with pytest.raises(ObservationError, match="'goal.x'.*configured observation topic"):
        PolicyRunner(GoalPolicy(), TASK, SteppedEnvTransport(robot), RunnerConfig(rate_hz=20.0), observation_topics={})


class CountingTransport(SteppedEnvTransport):
    """Counts the commands that reach the simulated robot."""

    sends = 0

    def send(self, command, source_stamp_ns):
        self.sends += 1
        super().send(command, source_stamp_ns)


@pytest.mark.parametrize("after_latch", ["hold", "silent"])
def test_after_a_fault_the_runner_holds_or_goes_silent_as_configured(after_latch):
    transport = CountingTransport(TaskEnvRobot(FirstOrderArmEnv(), TASK, ARM, seed=3, episodes=1))
    config = RunnerConfig(rate_hz=20.0, safety=SafetyConfig(warmup_ticks=0, ramp_speed=None, after_latch=after_latch))
    runner = PolicyRunner(GoalPolicy(nan_after=2), TASK, transport, config, observation_topics=transport.observation_topics())
    runner.configure()
    runner.activate()
    runner.run_stepped(max_ticks=30)
    stats = runner.stats()
    runner.shutdown()
    assert stats["latched"] == "fault" and runner.outcome == "fault"
    latched_at = stats["ticks"] - stats["fault_ticks"]
    assert transport.sends == (30 if after_latch == "hold" else latched_at)


def test_a_start_state_outside_the_training_range_is_reported():
    robot = TaskEnvRobot(FirstOrderArmEnv(), TASK, ARM, seed=3, episodes=1)
    transport = SteppedEnvTransport(robot)
    config = RunnerConfig(rate_hz=20.0, ood_warn_norm=0.9)
    runner = PolicyRunner(GoalPolicy(), TASK, transport, config, observation_topics=transport.observation_topics())
    runner.configure()
    runner.activate()
    runner.shutdown()
    # GoalPolicy's observation normaliser maps [-1, 1] to itself: entries beyond 0.9 in magnitude are flagged
    expected = [name for name, value in zip(TASK.obs_names, robot.obs) if abs(value) > 0.9]
    assert expected, "seed 3 should start with a goal coordinate beyond 0.9"
    assert [entry.split("=")[0] for entry in runner.stats()["start_out_of_distribution"]] == expected


def test_planner_and_evaluation_controller_share_one_schedule():
    """Planned synchronously (lead 0, no blending), the deploy planner sends what evaluation's ChunkController sends."""
    from robotune.rollout.chunking import ChunkController

    rng = np.random.default_rng(0)
    observations = rng.uniform(-1.5, 1.5, size=(23, 6)).astype(np.float32)
    controller = ChunkController(GoalPolicy(offset=0.1), num_envs=1)
    planner = ChunkPlanner(GoalPolicy(offset=0.1), lead_ticks=0, blend_steps=0)
    for tick, obs in enumerate(observations):
        planner.observe(obs)
        np.testing.assert_allclose(planner.action(tick), controller.act(obs[None])[0], rtol=1e-6)
    assert planner.stats.plans == controller.policy.calls == 6
