"""The runner's view of a robot: latest named signals in, joint commands out.

Two backends implement it: `ros.transport.Ros2Transport` (rclpy; any ROS 2 driver, e.g.
ros2_control with a forward position controller, or robotune's simulator driver node) and
`SteppedEnvTransport` (steps a task environment directly, no middleware, for fast checks). The
runner never sees a middleware type: observations come as an `ObservationSnapshot`, commands leave
as numpy arrays in the transport's `command_joints` order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from robotune.deploy.observation import ObservationSnapshot


class Transport(ABC):
    """Latest observations in, commands out. Implementations must be safe to call from the control thread."""

    #: True if time only advances when a command is sent (a directly stepped simulator):
    #: the runner then ticks as fast as it can instead of on the wall clock.
    stepped: bool = False

    #: The topic (or "") commands go to, for messages to the operator.
    command_topic: str = ""

    @property
    def command_topics(self) -> tuple[str, ...]:
        """Every topic a command goes out on (the arm's, then the gripper's where it has one), for the operator."""
        return (self.command_topic,) if self.command_topic else ()

    @property
    @abstractmethod
    def command_joints(self) -> tuple[str, ...]:
        """The joint order of the commands `send` takes (the controller's order), then the gripper's name if the
        robot has one."""

    @abstractmethod
    def start(self) -> None:
        """Open connections; observations start arriving after this."""

    @abstractmethod
    def snapshot(self) -> ObservationSnapshot:
        """The latest value of every observation source."""

    def prefetch(self) -> None:
        """Take what has arrived into the latest-value store ahead of the next `snapshot`, off the tick's
        read-to-send path (the runner calls it shortly before each deadline). Nothing to do by default."""

    @abstractmethod
    def send(self, command: np.ndarray, source_stamp_ns: int) -> None:
        """Send a command (`command_joints` order). `source_stamp_ns` is the stamp of the observation it came from."""

    @abstractmethod
    def estop_requested(self) -> bool:
        """True once an external emergency stop was received (latched until `clear_estop`)."""

    def clear_estop(self) -> None:
        """Forget a received emergency stop (after an operator reset)."""

    def take_reset_request(self) -> bool:
        """True once for each operator reset request received since the last call."""
        return False

    def command_subscribers(self) -> int | None:
        """How many subscribers the command topic has (the fewest of `command_topics`); None where there is nothing
        to check."""
        return None

    def rejection_summary(self) -> str:
        """The last reason a message was dropped as malformed, for error messages ("" if none)."""
        return ""

    def diagnostics(self) -> dict:
        return {}

    @abstractmethod
    def close(self) -> None:
        """Release everything; safe to call twice."""
