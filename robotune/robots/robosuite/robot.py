"""The Panda as robosuite models it: 7 revolute joints, position limits read from robosuite's MJCF, and its gripper.

The joint names are the MJCF's (`joint1` ... `joint7`); inside a robosuite scene they carry the
prefix `robot0_`, which `RobosuiteEnv` strips, so observation entries read `joint1.pos`.

The gripper is one commanded value after the joints, robosuite's gripper action: -1 opens, 1 closes.
robosuite reads only its sign and moves the two fingers' position targets across their actuators'
range (0 to 0.04 m each in panda_gripper.xml) by a tenth of it per control step, so 0 leaves them where they are.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mujoco

from robotune.core.registry import register
from robotune.core.robot import Robot
from robotune.core.spec import JointSpec, RobotSpec

JOINT_NAMES = tuple(f"joint{i}" for i in range(1, 8))
# rad/s, Franka Emika's datasheet for the Panda (joints 1-4: 2.175, joints 5-7: 2.61); the MJCF has none
MAX_JOINT_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
CONTROL_RATE_HZ = 20.0  # robosuite's default control_freq
GRIPPER_OPEN, GRIPPER_CLOSED = -1.0, 1.0


def panda_mjcf_path() -> Path:
    """robosuite's Panda MJCF, found without importing robosuite (which takes seconds)."""
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "robot 'panda' reads its joint limits from robosuite's Panda model, but robosuite is not installed "
            "(scripts/setup.sh installs it)"
        )
    return Path(spec.submodule_search_locations[0]) / "models" / "assets" / "robots" / "panda" / "robot.xml"


def panda_gripper_spec() -> JointSpec:
    """robosuite's Panda gripper command. Its rate limit lets the command cross its whole range in one control
    period at 20 Hz: robosuite acts on the sign and limits the fingers' speed itself, so a slower ramp would only
    delay the grasps the policy learnt (at a deployment rate k times higher it takes k ticks)."""
    return JointSpec("gripper", GRIPPER_OPEN, GRIPPER_CLOSED, max_velocity=(GRIPPER_CLOSED - GRIPPER_OPEN) * CONTROL_RATE_HZ)


def panda_robot_spec(control_rate_hz: float = CONTROL_RATE_HZ) -> RobotSpec:
    """The Panda's joints in command order with the MJCF's position limits (parsed, not compiled: 3 ms), and its gripper."""
    path = panda_mjcf_path()
    ranges = {joint.name: tuple(joint.range) for joint in mujoco.MjSpec.from_file(str(path)).joints}
    missing = [name for name in JOINT_NAMES if name not in ranges]
    if missing:
        raise RuntimeError(f"{path}: joints {missing} not found; it has {sorted(ranges)}")
    joints = tuple(
        JointSpec(name, float(ranges[name][0]), float(ranges[name][1]), velocity)
        for name, velocity in zip(JOINT_NAMES, MAX_JOINT_VELOCITY)
    )
    return RobotSpec(name="panda", joints=joints, control_rate_hz=control_rate_hz, command_interface="position",
                     gripper=panda_gripper_spec())


@register("robot", "panda")
class Panda(Robot):
    """A Franka Emika Panda commanded by absolute joint positions (a forward position controller) and its gripper."""

    @property
    def spec(self) -> RobotSpec:
        return panda_robot_spec()
