"""What a task and a robot look like from the outside: spaces, joints, limits, rates.

These specs are plain frozen dataclasses so that a checkpoint, the deploy runner and a
plugin can all agree on shapes and limits without importing MuJoCo or ROS.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class JointSpec:
    """One actuated joint, in SI units (rad, rad/s for revolute joints)."""

    name: str
    lower: float
    upper: float
    max_velocity: float = math.inf

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError(f"joint '{self.name}': lower limit {self.lower} must be below upper limit {self.upper}")
        if not self.max_velocity > 0:
            raise ValueError(f"joint '{self.name}': max_velocity must be positive, got {self.max_velocity}")


@dataclass(frozen=True)
class RobotSpec:
    """A robot as its driver sees it: ordered joints, the command interface and the control rate.

    `command_interface` is what the policy's action means for each joint, as in ros2_control:
    "position" (absolute joint targets) or "velocity".
    `command_joints` is the joint order the controller expects its commands in (ros2_control lets a
    controller list its joints in any order); empty means the order of `joints`.
    `gripper`, if any, is one more commanded value after the joints, in its driver's units (max_velocity: units/s).
    """

    name: str
    joints: tuple[JointSpec, ...]
    control_rate_hz: float
    command_interface: str = "position"
    command_joints: tuple[str, ...] = ()
    gripper: JointSpec | None = None

    def __post_init__(self) -> None:
        names = [j.name for j in self.joints]
        if len(set(names)) != len(names):
            raise ValueError(f"robot '{self.name}': duplicate joint names in {names}")
        if self.command_interface not in ("position", "velocity"):
            raise ValueError(f"robot '{self.name}': command_interface must be 'position' or 'velocity', "
                             f"got '{self.command_interface}'")
        if not self.control_rate_hz > 0:
            raise ValueError(f"robot '{self.name}': control_rate_hz must be positive, got {self.control_rate_hz}")
        if self.command_joints and sorted(self.command_joints) != sorted(names):
            raise ValueError(f"robot '{self.name}': command_joints {list(self.command_joints)} "
                             f"must list each of the joints {names} once")

    @property
    def command_order(self) -> tuple[str, ...]:
        """Joint names in the order commands are sent."""
        return self.command_joints or self.joint_names

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def lower(self) -> np.ndarray:
        return np.array([j.lower for j in self.joints], dtype=np.float64)

    @property
    def upper(self) -> np.ndarray:
        return np.array([j.upper for j in self.joints], dtype=np.float64)

    @property
    def max_velocity(self) -> np.ndarray:
        return np.array([j.max_velocity for j in self.joints], dtype=np.float64)

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("command_joints", "gripper"):  # omitted when they say nothing, so older robotune reads the checkpoint
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RobotSpec:
        return cls(**{**d, "joints": tuple(JointSpec(**j) for j in d["joints"]),
                      "command_joints": tuple(d.get("command_joints", ())),
                      "gripper": JointSpec(**d["gripper"]) if d.get("gripper") else None})


@dataclass(frozen=True)
class TaskSpec:
    """The contract between a task, a policy and the deploy runner.

    Observations and actions are flat float vectors. `obs_names` labels every observation
    entry (joint positions use the joint name with a suffix, e.g. "shoulder.pos") so that a
    deploy runner can assemble the vector from named sources such as JointState.
    """

    name: str
    obs_names: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    control_rate_hz: float
    max_episode_steps: int
    robot: RobotSpec | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.action_low) != len(self.action_high):
            raise ValueError(f"task '{self.name}': action_low has {len(self.action_low)} entries, "
                             f"action_high {len(self.action_high)}")
        if any(lo >= hi for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError(f"task '{self.name}': every action_low must be below its action_high")

    @property
    def obs_dim(self) -> int:
        return len(self.obs_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_low)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["robot"] = self.robot.to_dict() if self.robot else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TaskSpec:
        robot = RobotSpec.from_dict(d["robot"]) if d.get("robot") else None
        sequences = {key: tuple(d[key]) for key in ("obs_names", "action_low", "action_high")}
        return cls(**{**d, **sequences, "robot": robot})
