"""`transport=sim` on the Panda: a Lift policy's 8-dim joint-position action (7 joints, then the gripper) on robosuite."""

from __future__ import annotations

import numpy as np
import pytest

from robotune.core.task import build_task
from robotune.deploy.stepped_transport import SteppedEnvTransport
from robotune.deploy.task_env_robot import TaskEnvRobot


def test_the_gripper_value_of_a_command_reaches_robosuites_gripper():
    task = build_task({"name": "lift", "controller": "JOINT_POSITION"})
    spec = task.spec
    transport = SteppedEnvTransport(TaskEnvRobot(task.make_env(), spec, spec.robot, seed=0))
    assert transport.command_joints == (*spec.robot.joint_names, "gripper")
    transport.start()
    sim, gripper = transport.robot, transport.robot.env.suite_env.robots[0].gripper["right"]
    try:
        joints, fingers_at_start = sim.joint_positions(), sim.arrays()["gripper"][0]  # gripper.left: finger 1, m
        for _ in range(8):
            transport.send(np.r_[joints, 1.0], 0)
        closed = sim.arrays()["gripper"][0]
        np.testing.assert_allclose(gripper.current_action, [-1.0, 1.0])  # robosuite's fingers commanded shut
        for _ in range(12):
            transport.send(np.r_[joints, -1.0], 0)
        opened = sim.arrays()["gripper"][0]
    finally:
        sim.env.close()
    np.testing.assert_allclose(gripper.current_action, [1.0, -1.0])
    assert closed < fingers_at_start - 0.01 and opened > fingers_at_start  # m: the fingers moved both ways
    assert sim.invalid_commands == 0 and sim.commands_outside_limits == 0


def test_a_command_without_the_gripper_is_ignored_and_counted():
    task = build_task({"name": "lift", "controller": "JOINT_POSITION"})
    sim = TaskEnvRobot(task.make_env(), task.spec, task.spec.robot, seed=0)
    try:
        sim.reset()
        sim.step(sim.joint_positions())  # 7 values for 8 channels
    finally:
        sim.env.close()
    assert sim.invalid_commands == 1


def overrides(**settings) -> list[str]:
    return [f"{key}={value}" for key, value in settings.items()]


@pytest.mark.slow
def test_a_tiny_joint_position_lift_checkpoint_deploys_on_the_panda(tmp_path):
    """Train a tiny BC policy on recorded joint-position demonstrations, then run one episode through
    `robotune deploy ... robot=panda transport=sim`: the runner maps its 8-dim actions to the arm and gripper."""
    from robotune.deploy.cli import run_deployment
    from robotune.training.loop import train
    from tests.helpers import compose_config, tiny_train_overrides

    lift = {"task": "lift", "task.controller": "JOINT_POSITION", "task.max_episode_steps": 60,
            "data.num_episodes": 2, "data.demos_per_start": 1, "eval.episodes": 1, "eval.num_envs": 1, "eval.video": 0}
    tiny = [o for o in tiny_train_overrides(tmp_path, steps=10) if o.split("=")[0] not in lift]
    train(compose_config("train", tiny + overrides(**lift)))
    deploy = compose_config("deploy", overrides(checkpoint=tmp_path / "run", robot="panda", transport="sim", episodes=1))
    summary = run_deployment(deploy)
    assert summary["robot"] == "panda" and summary["outcome"] == "clean" and summary["episodes"] == 1
    runner = summary["runner"]
    assert runner["policy_ticks"] > 0 and runner["ticks"] == summary["results"][0]["steps"]
    assert summary["invalid_commands"] == 0 and summary["commands_outside_limits"] == 0
