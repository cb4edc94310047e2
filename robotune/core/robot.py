"""The Robot contract: the description of a robot a policy is deployed on, selected by `robot=<name>`.

A robot plugin says what the driver exposes: joint names and order, position and velocity limits,
control rate and command interface. A checkpoint records the robot its task was trained for; at
deploy time both must name the same joints in the same order, and the deployed robot's own limits
(a real arm's soft limits may be tighter than the simulation's) are the ones the safety layer enforces.
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
        """Joints in command order, their limits, the control rate and the command interface."""


def check_deployable(robot: RobotSpec, trained_for: RobotSpec | None, task_name: str) -> None:
    """Raise ValueError, naming both sides, unless `robot` can run a policy trained for `trained_for`."""
    if trained_for is None:
        raise ValueError(f"task '{task_name}' has no RobotSpec, so its policies cannot be deployed")
    if robot.joint_names != trained_for.joint_names:
        raise ValueError(
            f"robot '{robot.name}' has joints {list(robot.joint_names)}, but task '{task_name}' was trained for "
            f"robot '{trained_for.name}' with joints {list(trained_for.joint_names)} (same names, same order needed)"
        )
    if robot.command_interface != trained_for.command_interface:
        raise ValueError(
            f"robot '{robot.name}' takes {robot.command_interface} commands, but task '{task_name}' was trained "
            f"for {trained_for.command_interface} commands"
        )
