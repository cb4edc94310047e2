"""Robots described in YAML or by a URDF: parsed, checked, and deployed on the built-in task with transport=sim."""

from __future__ import annotations

import math

import pytest

from robotune.deploy.robot_description import RobotDescriptionError, load_robot_description, robot_from_urdf
from robotune.robots.reach_around.task import ReachAroundTask

# The reach_around arm as a driver vendor would ship it: a URDF with a fixed base link and a camera
# joint the policy was not trained for. Limits as in reach_around.xml; velocity 3 rad/s.
PLANAR_ARM_URDF = """<?xml version="1.0"?>
<robot name="planar_arm">
  <link name="base"/><link name="upper_arm"/><link name="forearm"/><link name="camera"/>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="upper_arm"/><axis xyz="0 0 1"/>
    <limit lower="-2.83" upper="2.83" velocity="3.0" effort="10"/>
  </joint>
  <joint name="elbow" type="revolute">
    <parent link="upper_arm"/><child link="forearm"/><origin xyz="0.5 0 0"/><axis xyz="0 0 1"/>
    <limit lower="0.05" upper="2.9" velocity="3.0" effort="10"/>
  </joint>
  <joint name="camera_pan" type="continuous">
    <parent link="forearm"/><child link="camera"/><axis xyz="0 0 1"/>
  </joint>
</robot>
"""


@pytest.fixture(scope="module")
def task():
    return ReachAroundTask().spec


def test_urdf_gives_the_trained_joints_limits_in_the_trained_order(tmp_path, task):
    path = tmp_path / "planar_arm.urdf"
    path.write_text(PLANAR_ARM_URDF)
    robot = robot_from_urdf(path, task)
    assert robot.joint_names == ("shoulder", "elbow") and robot.control_rate_hz == task.control_rate_hz
    assert [(j.lower, j.upper, j.max_velocity) for j in robot.joints] == [(-2.83, 2.83, 3.0), (0.05, 2.9, 3.0)]


def test_urdf_without_a_trained_joint_names_it(tmp_path, task):
    path = tmp_path / "arm.urdf"
    path.write_text(PLANAR_ARM_URDF.replace('name="elbow"', 'name="elbow_joint"'))
    with pytest.raises(RobotDescriptionError, match=r"no movable joint named \['elbow'\].*'elbow_joint'"):
        robot_from_urdf(path, task)


def test_yaml_takes_command_order_topics_and_limits_from_the_file_or_its_urdf(tmp_path, task):
    (tmp_path / "arm.urdf").write_text(PLANAR_ARM_URDF)
    path = tmp_path / "arm.yaml"
    path.write_text("name: vendor_arm\nurdf: arm.urdf\ncommand_joints: [elbow, shoulder]\n"
                    "joints:\n  - {name: elbow}\n  - {name: shoulder, lower: -1.5, upper: 1.5}\n"
                    "topics: {joint_states: /arm/joint_states}\n")
    robot, topics = load_robot_description(path, task)
    assert robot.name == "vendor_arm" and robot.command_order == ("elbow", "shoulder")
    assert [(j.name, j.lower, j.upper, j.max_velocity) for j in robot.joints] == [
        ("elbow", 0.05, 2.9, 3.0), ("shoulder", -1.5, 1.5, 3.0)]  # the file's own values win over the URDF's
    assert topics == {"joint_states": "/arm/joint_states"}


@pytest.mark.parametrize("text,message", [
    ("joints: [{name: shoulder, lower: -1, upper: 1}]\nrate: 20\n", r"unknown keys \['rate'\]"),
    ("joints: [{name: shoulder}]\n", r"joints\[0\] \('shoulder'\): no \['lower', 'upper'\], and no `urdf`"),
    ("joints: [{name: shoulder, lower: 1, upper: -1}]\n", r"joints\[0\]: joint 'shoulder': lower limit 1.0 must be below"),
    ("joints: [{name: a, lower: -1, upper: 1}]\ncommand_joints: [b]\n", r"command_joints \['b'\] must list each"),
    ("joints: []\n", r"`joints` must be a non-empty list"),
    ("joints: [{name: a, lower: -1, upper: 1}]\ntopics: {joint_state: /x}\n", r"topics: unknown keys \['joint_state'\]"),
])
def test_bad_yaml_is_refused_naming_the_file_and_the_key(tmp_path, task, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RobotDescriptionError, match=message) as error:
        load_robot_description(path, task)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("kind", ["yaml", "urdf"])
def test_a_described_robot_deploys_the_built_in_tasks_checkpoint_with_transport_sim(tmp_path, checkpoint_dir, kind):
    from robotune.deploy.cli import deploy
    from tests.helpers import compose_config

    (tmp_path / "arm.urdf").write_text(PLANAR_ARM_URDF)
    if kind == "yaml":
        description = tmp_path / "arm.yaml"
        description.write_text("name: yaml_arm\ncommand_joints: [elbow, shoulder]\njoints:\n"
                               "  - {name: elbow, lower: 0.05, upper: 2.9, max_velocity: 3.0}\n"
                               "  - {name: shoulder, lower: -2.83, upper: 2.83, max_velocity: 3.0}\n")
    else:
        description = tmp_path / "arm.urdf"
    cfg = compose_config("deploy", [f"checkpoint={checkpoint_dir}", f"robot_description={description}",
                                    "transport=sim", "episodes=2"])
    summary = deploy(cfg)
    assert summary["robot"] == ("yaml_arm" if kind == "yaml" else "arm") and summary["outcome"] == "clean"
    assert summary["episodes"] == 2 and summary["commands_outside_limits"] == 0 and summary["invalid_commands"] == 0
    assert summary["runner"]["policy_ticks"] > 10 and math.isfinite(summary["first_command_s"])
