"""The Panda's differential inverse kinematics in its robosuite scene, from joint positions alone.

The joint-position experts (`experts.JointPositionExpert`) need the end effector's Jacobian at the
observed joint positions. Rather than re-deriving the Panda's kinematics, `ArmKinematics` keeps a
copy of the robosuite scene's compiled MuJoCo model (arm, gripper, mount and base offset exactly as
robosuite builds them) and its own `MjData`, so it never touches the environment's simulation.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import mujoco
import numpy as np

if TYPE_CHECKING:
    from robotune.robots.robosuite.env import RobosuiteEnv

# Damped least squares: lambda (m, rad) keeps joint steps bounded near singular poses (the Panda's
# wrist) and changes them little elsewhere; with it the Lift expert succeeded in 50 of 50 episodes (README).
IK_DAMPING = 0.05


class ArmKinematics:
    """Pose and Jacobian of the end-effector site ("grip site") of robot 0 for given arm joint positions."""

    def __init__(self, env: RobosuiteEnv) -> None:
        suite = env.suite_env
        robot = suite.robots[0]
        self.model = copy.deepcopy(suite.sim.model._model)  # outlives the environment
        self.data = mujoco.MjData(self.model)
        self.site_id = int(robot.eef_site_id["right"])
        self.qpos_indexes = np.asarray(robot._ref_joint_pos_indexes)
        self.dof_indexes = np.asarray(robot._ref_joint_vel_indexes)

    def _set(self, joint_positions: np.ndarray) -> None:
        self.data.qpos[self.qpos_indexes] = joint_positions
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # the Jacobian needs the bodies' centres of mass

    def site_pose(self, joint_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,) m, rotation (3, 3)) of the end-effector site in the world frame."""
        self._set(joint_positions)
        return self.data.site_xpos[self.site_id].copy(), self.data.site_xmat[self.site_id].reshape(3, 3).copy()

    def jacobian(self, joint_positions: np.ndarray) -> np.ndarray:
        """(6, 7): the site's linear (rows 0-2, m/rad) and angular (rows 3-5) velocity per arm joint, world frame."""
        self._set(joint_positions)
        linear, angular = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        mujoco.mj_jacSite(self.model, self.data, linear, angular, self.site_id)
        return np.vstack([linear[:, self.dof_indexes], angular[:, self.dof_indexes]])

    def joint_step(self, joint_positions: np.ndarray, displacement: np.ndarray) -> np.ndarray:
        """(7,) joint change (rad) that moves the site by `displacement` (6,): (dx, dy, dz) m and an
        axis-angle rotation (rad), both in the world frame, by damped least squares."""
        jacobian = self.jacobian(joint_positions)
        damped = jacobian @ jacobian.T + IK_DAMPING**2 * np.eye(6)
        return jacobian.T @ np.linalg.solve(damped, displacement)
