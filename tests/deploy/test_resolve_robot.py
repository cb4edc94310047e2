from dataclasses import replace

import pytest

from robotune.core.registry import PluginError
from robotune.core.spec import JointSpec
from robotune.deploy.cli import resolve_robot
from robotune.deploy.runner import DeployError, in_joint_order
from robotune.deploy.safety import command_channels
from robotune.robots.reach_around.task import ReachAroundTask


def test_robot_plugin_resolves_to_its_spec():
    task = ReachAroundTask().spec
    robot, topics = resolve_robot({"name": "planar_arm"}, task)
    assert robot.joint_names == ("shoulder", "elbow") and robot == task.robot and topics == {}


def test_unknown_robot_lists_the_known_ones():
    with pytest.raises(PluginError, match=r"no robot plugin named 'ur5'. Available: .*planar_arm"):
        resolve_robot({"name": "ur5"}, ReachAroundTask().spec)


def test_a_robot_with_other_joints_is_refused_naming_both():
    task = ReachAroundTask().spec
    other = replace(task.robot, name="other_arm", joints=(JointSpec("elbow", -1, 1), JointSpec("wrist", -1, 1)))
    with pytest.raises(DeployError, match=r"trained for robot 'other_arm' with joints \['elbow', 'wrist'\] "
                                          r"\(missing \['wrist'\], not trained for \['shoulder'\]"):
        resolve_robot({"name": "planar_arm"}, replace(task, robot=other))


def test_a_robot_listing_the_joints_in_controller_order_is_accepted():
    task = ReachAroundTask().spec
    trained_in_other_order = replace(task.robot, joints=task.robot.joints[::-1])
    robot, _ = resolve_robot({"name": "planar_arm"}, replace(task, robot=trained_in_other_order))
    assert robot.joint_names == ("shoulder", "elbow")


def test_command_joints_must_list_each_joint_once():
    task = ReachAroundTask().spec
    with pytest.raises(ValueError, match=r"command_joints \['elbow', 'elbow'\] must list each of the joints"):
        replace(task.robot, command_joints=("elbow", "elbow"))


def test_command_joints_round_trip_and_are_left_out_of_checkpoints_when_empty():
    from robotune.core.spec import RobotSpec

    robot = ReachAroundTask().spec.robot
    assert "command_joints" not in robot.to_dict()  # older robotune can read the checkpoint
    reordered = replace(robot, command_joints=("elbow", "shoulder"))
    assert RobotSpec.from_dict(reordered.to_dict()) == reordered
    assert in_joint_order(reordered, ("elbow", "shoulder")).joint_names == ("elbow", "shoulder")
    assert in_joint_order(reordered, ("elbow", "shoulder")).command_order == ("elbow", "shoulder")


def test_a_gripper_round_trips_and_older_checkpoints_have_none():
    from robotune.core.spec import RobotSpec

    robot = ReachAroundTask().spec.robot
    assert "gripper" not in robot.to_dict() and RobotSpec.from_dict(robot.to_dict()).gripper is None
    with_gripper = replace(robot, gripper=JointSpec("hand", -1.0, 1.0, 40.0))
    assert RobotSpec.from_dict(with_gripper.to_dict()) == with_gripper
    names, lower, upper = command_channels(with_gripper)
    assert names == ("shoulder", "elbow", "hand") and list(upper) == [*robot.upper, 1.0] and lower[-1] == -1.0


def test_a_robot_without_the_trained_gripper_is_refused_naming_both():
    task = ReachAroundTask().spec
    trained_with_hand = replace(task, robot=replace(task.robot, gripper=JointSpec("hand", -1.0, 1.0)))
    with pytest.raises(DeployError, match=r"robot 'planar_arm' has no gripper, but task 'reach_around' was trained "
                                          r"for robot 'planar_arm' with gripper 'hand'"):
        resolve_robot({"name": "planar_arm"}, trained_with_hand)


def test_a_gripper_named_like_a_joint_is_refused():
    from robotune.deploy.runner import PolicyRunner, RunnerConfig
    from robotune.deploy.stepped_transport import SteppedEnvTransport
    from robotune.deploy.task_env_robot import TaskEnvRobot
    from tests.deploy.fakes import TASK, FirstOrderArmEnv, GoalPolicy

    robot = replace(TASK.robot, gripper=JointSpec("elbow", -1.0, 1.0))
    with pytest.raises(DeployError, match="its gripper 'elbow' has the name of one of its joints"):
        PolicyRunner(GoalPolicy(), TASK, SteppedEnvTransport(TaskEnvRobot(FirstOrderArmEnv(), TASK, TASK.robot)),
                     RunnerConfig(rate_hz=20.0), robot)
