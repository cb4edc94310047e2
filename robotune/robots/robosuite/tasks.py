"""The robosuite task plugins: `lift`, `pick_place_can` and `nut_assembly_square`, each with a Panda.

Observation (float32), named in `TaskSpec.obs_names` and listed by robosuite key in `spec.extra["obs_keys"]`:
    joint1.pos ... joint7.pos, joint1.vel ... joint7.vel     rad, rad/s
    eef.x, eef.y, eef.z, eef.qx, eef.qy, eef.qz, eef.qw       m, quaternion (x, y, z, w)
    gripper.left, gripper.right                               finger positions, m
    <object>.x, .y, .z, .qx, .qy, .qz, .qw                    the task's object, world frame
Action: see `env.py` (OSC_POSE deltas by default, absolute joint targets with `controller=JOINT_POSITION`).

The scripted experts (`experts.py`) act on OSC_POSE, or on joint targets through differential inverse
kinematics with `controller=JOINT_POSITION`; `expert_noise` makes them imperfect on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from robotune.core.registry import register
from robotune.core.spec import TaskSpec
from robotune.core.task import Task, TaskConfig
from robotune.robots.robosuite.env import (
    ObservationLayout,
    RobosuiteEnv,
    object_keys,
    proprioception_keys,
)
from robotune.robots.robosuite.experts import (
    JointPositionExpert,
    LiftExpert,
    NutAssemblySquareExpert,
    PhaseExpert,
    PickPlaceCanExpert,
)
from robotune.robots.robosuite.kinematics import ArmKinematics
from robotune.robots.robosuite.robot import CONTROL_RATE_HZ, GRIPPER_CLOSED, GRIPPER_OPEN, panda_robot_spec

OSC_POSE_ACTION_DIM = 6


@dataclass
class RobosuiteTaskConfig(TaskConfig):
    max_episode_steps: int = 400  # at 20 Hz
    controller: str = "OSC_POSE"  # or "JOINT_POSITION": absolute joint targets, for policies deployed on the Panda
    expert_noise: float = 0.0  # std of Gaussian noise on the expert's arm actions, in normalised OSC units (both controllers)
    reward_shaping: bool = False  # robosuite's staged dense reward instead of 1 on success
    terminate_on_success: bool = True


class RobosuiteTask(Task):
    """A robosuite environment, its observation layout and its expert; subclasses name them."""

    config_class = RobosuiteTaskConfig
    suite_env_name: ClassVar[str]
    object_key: ClassVar[str]  # robosuite's observation prefix for the object, e.g. "Can"
    object_name: ClassVar[str]  # robotune's name for it in obs_names, e.g. "can"
    expert_class: ClassVar[type[PhaseExpert]]

    def __init__(self, config: RobosuiteTaskConfig | None = None) -> None:
        super().__init__(config or self.config_class())
        self.layout = ObservationLayout(proprioception_keys() + object_keys(self.object_key, self.object_name))

    @property
    def spec(self) -> TaskSpec:
        if self.config.controller == "JOINT_POSITION":
            robot = panda_robot_spec()
            low, high = (*robot.lower, robot.gripper.lower), (*robot.upper, robot.gripper.upper)
        else:
            robot = None  # OSC deltas are not joint commands: nothing to deploy on a joint-level driver
            low, high = (-1.0,) * OSC_POSE_ACTION_DIM + (GRIPPER_OPEN,), (1.0,) * OSC_POSE_ACTION_DIM + (GRIPPER_CLOSED,)
        return TaskSpec(
            name=self.plugin_name,
            obs_names=self.layout.names,
            action_low=tuple(float(x) for x in low),
            action_high=tuple(float(x) for x in high),
            control_rate_hz=CONTROL_RATE_HZ,
            max_episode_steps=self.config.max_episode_steps,
            robot=robot,
            extra={
                "robosuite_env": self.suite_env_name,
                "controller": self.config.controller,
                "obs_keys": {key.key: len(key.entry_names) for key in self.layout.keys},
                "gripper_action_index": len(low) - 1,
            },
        )

    def make_env(self, render_mode: str | None = None) -> RobosuiteEnv:
        return RobosuiteEnv(
            self.suite_env_name,
            self.layout,
            controller=self.config.controller,
            max_episode_steps=self.config.max_episode_steps,
            reward_shaping=self.config.reward_shaping,
            terminate_on_success=self.config.terminate_on_success,
            render_mode=render_mode,
        )

    def make_expert(self) -> PhaseExpert | JointPositionExpert:
        """The task's phase expert; with JOINT_POSITION, wrapped to act on joint targets (builds one scene, ~1 s)."""
        osc_expert = self.expert_class(self.layout.names, self.object_name, noise_std=self.config.expert_noise)
        if self.config.controller == "OSC_POSE":
            return osc_expert
        env = self.make_env()
        try:
            kinematics = ArmKinematics(env)
        finally:
            env.close()
        robot = panda_robot_spec()
        return JointPositionExpert(osc_expert, kinematics, self.layout.names, robot.joint_names, robot.lower, robot.upper)


@register("task", "lift")
class LiftTask(RobosuiteTask):
    """Lift a cube (random position and yaw) off the table; success once it is 4 cm up."""

    suite_env_name, object_key, object_name, expert_class = "Lift", "cube", "cube", LiftExpert


@register("task", "pick_place_can")
class PickPlaceCanTask(RobosuiteTask):
    """Move a can from the left bin into its quarter of the right bin; success once the hand has let go."""

    suite_env_name, object_key, object_name, expert_class = "PickPlaceCan", "Can", "can", PickPlaceCanExpert


@register("task", "nut_assembly_square")
class NutAssemblySquareTask(RobosuiteTask):
    """Put the square nut over the square peg; success once it rests at the peg's base and the hand has let go."""

    suite_env_name, object_key = "NutAssemblySquare", "SquareNut"
    object_name, expert_class = "square_nut", NutAssemblySquareExpert
