"""What a task and a robot look like from the outside: spaces, joints, limits, rates.

These specs are plain frozen dataclasses so that a checkpoint, the deploy runner and a
plugin can all agree on shapes and limits without importing MuJoCo or ROS.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

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
class GripperSpec:
    """A gripper commanded by one value, in its driver's units, sent after the arm's joints.

    It is commanded, not measured as a joint: the deploy safety layer keeps its command within
    [lower, upper] and changes it by at most `max_rate` units/s, but gives it no ramp and no tracking
    bound (fingers closed on an object never reach their target), and a hold repeats its last command.
    `idle` is the command sent before the policy's first one: the value that leaves the gripper as it is.
    """

    name: str
    lower: float
    upper: float
    max_rate: float = math.inf
    idle: float = 0.0

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError(f"gripper '{self.name}': lower limit {self.lower} must be below upper limit {self.upper}")
        if not self.max_rate > 0:
            raise ValueError(f"gripper '{self.name}': max_rate must be positive, got {self.max_rate}")
        if not self.lower <= self.idle <= self.upper:
            raise ValueError(f"gripper '{self.name}': idle command {self.idle} must lie in [{self.lower}, {self.upper}]")


@dataclass(frozen=True)
class RobotSpec:
    """A robot as its driver sees it: ordered joints, the command interface and the control rate.

    `command_interface` is what the policy's action means for each joint, as in ros2_control:
    "position" (absolute joint targets) or "velocity".
    `command_joints` is the joint order the controller expects its commands in (ros2_control lets a
    controller list its joints in any order); empty means the order of `joints`.
    `gripper`, if any, is one more commanded value: the action's last entry, after the joints.
    """

    name: str
    joints: tuple[JointSpec, ...]
    control_rate_hz: float
    command_interface: str = "position"
    command_joints: tuple[str, ...] = ()
    gripper: GripperSpec | None = None

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
        if self.gripper is not None and self.gripper.name in names:
            raise ValueError(f"robot '{self.name}': gripper '{self.gripper.name}' has the name of one of its joints")

    @property
    def channel_names(self) -> tuple[str, ...]:
        """What an action commands, in action order: the joints, then the gripper if there is one."""
        return self.joint_names + ((self.gripper.name,) if self.gripper else ())

    @property
    def command_channels(self) -> tuple[str, ...]:
        """What a command carries, in the order it is sent: `command_order`, then the gripper if there is one."""
        return self.command_order + ((self.gripper.name,) if self.gripper else ())

    @property
    def command_order(self) -> tuple[str, ...]:
        """Joint names in the order commands are sent."""
        return self.command_joints or self.joint_names

    def in_joint_order(self, names: tuple[str, ...]) -> RobotSpec:
        """The same robot with `joints` listed in the order of `names` (the command order is kept)."""
        by_name = {j.name: j for j in self.joints}
        return replace(self, joints=tuple(by_name[n] for n in names), command_joints=self.command_order)

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

    @property
    def channel_lower(self) -> np.ndarray:
        """Lower limits of `channel_names`: the joints', then the gripper's."""
        return np.append(self.lower, [self.gripper.lower] if self.gripper else [])

    @property
    def channel_upper(self) -> np.ndarray:
        return np.append(self.upper, [self.gripper.upper] if self.gripper else [])

    def to_dict(self) -> dict:
        d = asdict(self)
        # omitted when they say nothing, so older robotune reads the checkpoint
        if not self.command_joints:
            del d["command_joints"]
        if self.gripper is None:
            del d["gripper"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RobotSpec:
        gripper = GripperSpec(**d["gripper"]) if d.get("gripper") else None
        return cls(**{**d, "joints": tuple(JointSpec(**j) for j in d["joints"]),
                      "command_joints": tuple(d.get("command_joints", ())), "gripper": gripper})


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
