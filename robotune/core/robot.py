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
