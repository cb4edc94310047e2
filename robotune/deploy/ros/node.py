"""rclpy nodes for the deploy runtime: lean nodes polled by their own loop, and a spun node for peers.

- `lean_node`: a node in a `Context` of its own (so that a runner, a simulator and test peers can
  live in one process without sharing rclpy's global init), with no parameter services and no
  /rosout. The runner (`Ros2Transport`) and the simulator driver (`simulator_driver`) poll its subscriptions
  with `take_waiting` from their own loops, without an executor: an executor rebuilds its wait set
  from every entity on each wait, in Python, holding the GIL the control thread needs (profiled at
  100 Hz with 1 kHz joint states: ~0.8 ms of spin-thread CPU per callback, most of it in
  `_wait_for_ready_callbacks`; the six parameter services and /rosout made it worse).
- `SpinningNode`: a lean node spun by a `SingleThreadedExecutor` in a daemon thread, for test
  peers that want callbacks. `MultiThreadedExecutor` starved a 100 Hz timer to 10-35 Hz under
  200-500 Hz of /joint_states input on this 2-core machine. Shutdown order: shut the context down
  first, then join the spin thread; shutting the executor down while another thread is inside
  `spin()` aborted the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

# Commands: RELIABLE, because ros2_control's forward_command_controller subscribes with
# SystemDefaultsQoS (reliable) and a best-effort publisher delivers nothing to it.
COMMAND_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)
# Sensors: best effort (which also matches reliable publishers) and only the newest sample: when the
# executor falls behind a 1 kHz joint-state stream, a deeper queue makes it replay stale states.
SENSOR_QOS = QoSProfile(
    reliability=qos_profile_sensor_data.reliability,
    durability=qos_profile_sensor_data.durability,
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
)
# /joint_states: best effort like SENSOR_QOS, but queued, because several publishers share the topic
# (an arm, a gripper, a mock) and the runner merges them by joint name: with depth 1 any other
# publisher's message displaced the arm's. 50 covers 1 kHz of joint states at a 20 Hz tick.
JOINT_STATE_QOS = QoSProfile(
    reliability=qos_profile_sensor_data.reliability,
    durability=qos_profile_sensor_data.durability,
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
)
# Events (e-stop, episode markers): reliable with a deeper queue, none may be lost.
EVENT_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=50)


def lean_node(name: str, domain_id: int | None = None, namespace: str = "") -> tuple[Context, Node]:
    """A node in a Context of its own, without parameter services or /rosout (see the module docstring)."""
    context = Context()
    init_kwargs = {"context": context}
    if domain_id is not None:
        init_kwargs["domain_id"] = domain_id
    rclpy.init(**init_kwargs)
    node = rclpy.create_node(name, namespace=namespace, context=context, start_parameter_services=False, enable_rosout=False)
    return context, node


def take_waiting(subscription, msg_type: type, max_takes: int) -> Iterator[tuple[object, int]]:
    """(message, received_ns) for each message waiting on a subscription no executor spins, at most `max_takes`.

    received_ns: when DDS received it (rmw's `received_timestamp`, system clock, ns), or the time of
    the take where the RMW does not fill it.
    """
    for _ in range(max_takes):
        with subscription.handle:
            taken = subscription.handle.take_message(msg_type, False)
        if taken is None:
            return
        msg, info = taken
        yield msg, info.get("received_timestamp", 0) or time.time_ns()


class SpinningNode:
    """A node plus the thread that spins it. Create publishers/subscriptions on `.node`."""

    def __init__(self, name: str, domain_id: int | None = None, namespace: str = "") -> None:
        self.context, self.node = lean_node(name, domain_id, namespace)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{name}-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, rclpy.executors.ShutdownException):
            pass
        except Exception:  # the context went away under spin_once during close(); nothing to do
            if self.context.ok():
                raise

    def close(self, timeout_s: float = 2.0) -> None:
        if not self.context.ok():
            return
        self.context.try_shutdown()
        self._thread.join(timeout=timeout_s)
        try:
            self.executor.shutdown(timeout_sec=0.5)
            self.node.destroy_node()
        except Exception:  # already torn down with the context
            pass
