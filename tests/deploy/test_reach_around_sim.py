"""`transport=sim` on the built-in MuJoCo task, driven by its scripted expert through the runner."""

from __future__ import annotations

import pytest

from robotune.deploy.cli import default_observation_topics
from robotune.deploy.runner import PolicyRunner, RunnerConfig
from robotune.deploy.safety import SafetyConfig
from robotune.deploy.stepped_transport import SteppedEnvTransport
from robotune.deploy.task_env_robot import TaskEnvRobot
from tests.deploy.fakes import ExpertPolicy


@pytest.mark.parametrize("lead_ticks", [0, 1])
def test_expert_reaches_the_goal_through_the_runner(lead_ticks):
    from robotune.robots.reach_around.task import ReachAroundTask

    task = ReachAroundTask()
    spec = task.spec
    sim = TaskEnvRobot(task.make_env(), spec, spec.robot, seed=100000, episodes=4)
    config = RunnerConfig(rate_hz=spec.control_rate_hz, lead_ticks=lead_ticks, blend_steps=0, safety=SafetyConfig(warmup_ticks=0))
    runner = PolicyRunner(ExpertPolicy(), spec, SteppedEnvTransport(sim), config, observation_topics=default_observation_topics(spec, spec.robot))
    runner.configure()
    runner.activate()
    runner.run_stepped(max_ticks=4 * (spec.max_episode_steps + 1), until=lambda: sim.finished)
    runner.shutdown()
    summary = sim.summary()
    assert summary["episodes"] == 4
    assert summary["success_rate"] == 1.0, summary
    assert summary["commands_outside_limits"] == 0
