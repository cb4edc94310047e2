"""The planar two-link arm of `reach_around`: its MJCF, its RobotSpec and its kinematics.

The MJCF is the single source of joint limits and link lengths; the spec and the kinematics
read them from the compiled model so they cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from robotune.core.registry import register
from robotune.core.robot import Robot
from robotune.core.spec import JointSpec, RobotSpec

MJCF_PATH = Path(__file__).with_name("reach_around.xml")
JOINT_NAMES = ("shoulder", "elbow")
MAX_JOINT_VELOCITY = 3.0  # rad/s, what the deploy side may command; the expert stays below it
CONTROL_RATE_HZ = 20.0


def load_model() -> mujoco.MjModel:
    """A fresh compiled model; each environment owns its own, since MuJoCo models are mutable."""
    return mujoco.MjModel.from_xml_path(str(MJCF_PATH))


def robot_spec(model: mujoco.MjModel) -> RobotSpec:
    joints = []
    for name in JOINT_NAMES:
        lower, upper = model.joint(name).range
        joints.append(JointSpec(name, float(lower), float(upper), MAX_JOINT_VELOCITY))
    return RobotSpec(name="planar_arm", joints=tuple(joints), control_rate_hz=CONTROL_RATE_HZ, command_interface="position")


@register("robot", "planar_arm")
class PlanarArm(Robot):
    """The reach_around arm as a deploy target, driven over ROS 2 by `robotune.deploy.ros.simulator_driver`."""

    @property
    def spec(self) -> RobotSpec:
        return robot_spec(load_model())


class PlanarArmKinematics:
    """Fingertip forward and inverse kinematics on the elbow branch the joint limits allow (elbow > 0)."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self.upper_length = float(np.linalg.norm(model.body("forearm").pos[:2]))
        self.forearm_length = float(np.linalg.norm(model.site("fingertip").pos[:2]))
        self.lower = model.jnt_range[:, 0].copy()
        self.upper = model.jnt_range[:, 1].copy()

    def forward(self, q: np.ndarray) -> np.ndarray:
        """Fingertip (x, y) in metres for joint positions (shoulder, elbow) in rad."""
        a, b = self.upper_length, self.forearm_length
        return np.array(
            [a * np.cos(q[0]) + b * np.cos(q[0] + q[1]), a * np.sin(q[0]) + b * np.sin(q[0] + q[1])]
        )

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        """Joint positions that put the fingertip at `xy`, or at the nearest reachable point.

        Using one elbow branch only keeps the solution continuous along a Cartesian path.
        """
        a, b = self.upper_length, self.forearm_length
        cos_elbow = (xy[0] ** 2 + xy[1] ** 2 - a**2 - b**2) / (2 * a * b)
        elbow = np.clip(np.arccos(np.clip(cos_elbow, -1.0, 1.0)), self.lower[1], self.upper[1])
        shoulder = np.arctan2(xy[1], xy[0]) - np.arctan2(b * np.sin(elbow), a + b * np.cos(elbow))
        return np.clip(np.array([shoulder, elbow]), self.lower, self.upper)
