"""The runner's view of a robot: latest named signals in, joint commands out.

Two backends implement it: `Ros2Transport` (rclpy; any ROS 2 driver, e.g. ros2_control with a
forward position controller, or robotune's MuJoCo simulator node) and `SimTransport` (steps a
MuJoCo task environment directly, no middleware, for fast checks). The runner never sees a
middleware type: observations come as an `ObservationSnapshot`, commands leave as numpy arrays in
the robot's joint order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from robotune.deploy.observation import ArrayTopic, ObservationSnapshot


@dataclass
class RosTopics:
    """Topic names and message choices; the defaults follow ros2_control's conventions."""

    joint_states: str = "/joint_states"
    # "array": std_msgs/Float64MultiArray to a forward_command_controller, data in the robot's joint order.
    # "trajectory": trajectory_msgs/JointTrajectory with one point to a joint_trajectory_controller.
    command_type: str = "array"
    array_command: str = "/forward_position_controller/commands"
    trajectory_command: str = "/joint_trajectory_controller/joint_trajectory"
    # One point reached after 1.5 control periods: late enough that the controller interpolates
    # smoothly, early enough that the next point replaces it before it is reached.
    trajectory_time_from_start_periods: float = 1.5
    estop: str = "/emergency_stop"  # std_msgs/Bool; True latches the stop
    episode: str | None = None  # std_msgs/String JSON events from a simulator; None on a real robot
    # Write the stamp of the JointState a command was computed from into the command (see Ros2Transport).
    echo_obs_stamp: bool = True
    observation_topics: dict[str, ArrayTopic] = field(default_factory=dict)


class Transport(ABC):
    """Latest observations in, commands out. Implementations must be safe to call from the control thread."""

    #: True if time only advances when a command is sent (a directly stepped simulator):
    #: the runner then ticks as fast as it can instead of on the wall clock.
    stepped: bool = False

    @abstractmethod
    def start(self) -> None:
        """Open connections; observations start arriving after this."""

    @abstractmethod
    def snapshot(self) -> ObservationSnapshot:
        """The latest value of every observation source."""

    @abstractmethod
    def send(self, command: np.ndarray, source_stamp_ns: int) -> None:
        """Send a command (robot joint order). `source_stamp_ns` is the stamp of the observation it came from."""

    @abstractmethod
    def estop_requested(self) -> bool:
        """True once an external emergency stop was received (latched by the transport until restart)."""

    def rejection_summary(self) -> str:
        """The last reason a message was dropped as malformed, for error messages ("" if none)."""
        return ""

    def diagnostics(self) -> dict:
        return {}

    @abstractmethod
    def close(self) -> None:
        """Release everything; safe to call twice."""
