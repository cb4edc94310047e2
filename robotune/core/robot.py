"""The Robot contract: the description of a robot a policy is deployed on, selected by `robot=<name>`.

A robot plugin says what the driver exposes: joint names and order, position and velocity limits,
control rate, command interface and the joint order its controller takes commands in. A checkpoint
records the robot its task was trained for; at deploy time both must name the same joints, in any
order: the runner maps the trained order to the robot's command order by name. The deployed
robot's own limits (a real arm's soft limits may be tighter than the simulation's) are the ones the
safety layer enforces.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from robotune.core.config import PluginConfig
from robotune.core.spec import RobotSpec


@dataclass
class RobotConfig(PluginConfig):
    pass


class Robot(ABC):
    """Register subclasses with `@register("robot", name)`."""

    config_class: ClassVar[type[RobotConfig]] = RobotConfig

    def __init__(self, config: RobotConfig | None = None) -> None:
        self.config = config or self.config_class()

    @property
    @abstractmethod
    def spec(self) -> RobotSpec:
        """Joints, their limits, the command order, the control rate and the command interface."""

    @property
    def topics(self) -> dict[str, str]:
        """ROS topic names this robot's driver uses where they differ from ros2_control's defaults
        (keys as in the deploy config's `ros` section, e.g. {"joint_states": "/arm/joint_states"})."""
        return {}


def check_deployable(robot: RobotSpec, trained_for: RobotSpec | None, task_name: str) -> None:
    """Raise ValueError, naming both sides, unless `robot` can run a policy trained for `trained_for`."""
    if trained_for is None:
        raise ValueError(f"task '{task_name}' has no RobotSpec, so its policies cannot be deployed")
    if set(robot.joint_names) != set(trained_for.joint_names):
        missing = sorted(set(trained_for.joint_names) - set(robot.joint_names))
        extra = sorted(set(robot.joint_names) - set(trained_for.joint_names))
        raise ValueError(
            f"robot '{robot.name}' has joints {list(robot.joint_names)}, but task '{task_name}' was trained for "
            f"robot '{trained_for.name}' with joints {list(trained_for.joint_names)} (missing {missing}, "
            f"not trained for {extra}; the order may differ, the names may not)"
        )
    if robot.command_interface != trained_for.command_interface:
        raise ValueError(
            f"robot '{robot.name}' takes {robot.command_interface} commands, but task '{task_name}' was trained "
            f"for {trained_for.command_interface} commands"
        )
