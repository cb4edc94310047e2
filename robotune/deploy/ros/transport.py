"""The rclpy backend of `Transport`: JointState and array topics in, ros2_control commands out.

Joint states are merged by joint name into a `SignalCache`; commands go out RELIABLE in the
robot's command order (`joint_names`), and JointTrajectory commands carry those names. A robot
with a gripper gets the gripper's value on a topic of its own (`topics.gripper_command`, a
Float64MultiArray with one value), as ros2_control gives a gripper its own controller; it is
published just before the arm's command of the same tick. When `echo_obs_stamp` is set, the
header stamp of the JointState a command was computed from travels with it (Float64MultiArray:
`layout.dim[0].label = "obs_stamp_ns=<ns>"`; JointTrajectory: `header.frame_id`), so a robot-side
tool can measure observation-to-command latency and pair a gripper command with the arm's.
Controllers ignore both fields: forward_command_controller reads only `data`, and the trajectory
controller uses `header.stamp` (left at zero, "start now"), not `frame_id`.

No executor, no spin thread: the control thread takes every incoming message itself when it reads
a snapshot, as ros2_control's update loop reads its state interfaces. Why: at 1 kHz of joint
states the rclpy executor, which rebuilds its wait set in Python on every wait, used ~0.8 ms of
GIL-holding CPU per message and still fell behind (it handled ~450 of 1000 msgs/s, profiled at
100 Hz), so the control thread waited for the GIL at its deadline and in `publish` (tick p99
5-7 ms); with only the events (/episode, /estop) and the 20 Hz /goal left on it, the executor
still made the 100 Hz jitter p99 4-9 ms. Polling costs one take per subscription per tick.
/joint_states queues (`JOINT_STATE_QOS`) and every waiting message is taken and merged by name in
arrival order: with KEEP_LAST 1, any other publisher's message (a gripper, a second arm)
displaced the arm's before the tick took it, and up to 87 % of ticks held. Array topics keep only
their newest sample (KEEP_LAST 1). A reading's age is from DDS's reception time, so a sample that
waited in the queue is not taken for a fresh one. Events (e-stop, reset, episodes) queue
(reliable, depth 50) and are all taken, so an e-stop acts on the next tick. Taking and parsing a
JointState costs ~70-90 µs of Python here, so with 1 kHz joint states the runner takes the queue
every few milliseconds while it waits for a deadline (`prefetch`) and the tick itself only the
last ones.
"""

from __future__ import annotations

import array
import json
import threading
import time

import numpy as np
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Empty, Float64MultiArray, MultiArrayDimension, MultiArrayLayout, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robotune.deploy.observation import ObservationSnapshot, SignalCache
from robotune.deploy.ros.node import COMMAND_QOS, EVENT_QOS, JOINT_STATE_QOS, SENSOR_QOS, lean_node, take_waiting
from robotune.deploy.ros.topics import RosTopics
from robotune.deploy.transport import Transport

STAMP_LABEL = "obs_stamp_ns="


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def command_source_stamp(msg: Float64MultiArray | JointTrajectory) -> int | None:
    """The observation stamp a runner echoed into a command, or None (robot side of the latency probe)."""
    text = msg.header.frame_id if isinstance(msg, JointTrajectory) else (msg.layout.dim[0].label if msg.layout.dim else "")
    if text.startswith(STAMP_LABEL):
        return int(text[len(STAMP_LABEL):])
    return None


class Ros2Transport(Transport):
    """rclpy transport with its own Context; its subscriptions are polled by the control thread."""

    def __init__(
        self,
        joint_names: tuple[str, ...],
        rate_hz: float,
        topics: RosTopics | None = None,
        domain_id: int | None = None,
        node_name: str = "robotune_policy_runner",
        record_path: str | None = None,
        shadow: bool = False,
        gripper: str | None = None,
    ) -> None:
        """joint_names: this robot's joints in the controller's command order.
        gripper: the gripper's name (RobotSpec.gripper) if the robot has one: `send` then takes one more value.
        record_path: also write every message taken and every command sent to this MCAP file (recorder.py).
        shadow: publish commands on `topics.shadow_command` instead of the controller's topic."""
        self.joint_names = tuple(joint_names)
        self.gripper = gripper
        self.shadow = shadow
        self.rate_hz = rate_hz
        self.topics = topics or RosTopics()
        if self.topics.command_type not in ("array", "trajectory"):
            raise ValueError(f"topics.command_type must be 'array' or 'trajectory', got '{self.topics.command_type}'")
        self.domain_id = domain_id
        self.node_name = node_name
        self.cache = SignalCache(self.joint_names, dict(self.topics.observation_topics), self.topics.joint_states)
        self._estop = threading.Event()
        self.reset_requests = 0
        self._reset_pending = False
        self._context = None
        self._node = None
        # (subscription, message type, handler(msg, received_at), most messages taken per snapshot)
        self._polled: list[tuple[object, type, object, int]] = []
        self.record_path = record_path
        self.recorder = None
        self._publisher = None
        self._command: Float64MultiArray | JointTrajectory | None = None  # reused every tick
        self._gripper_publisher = None
        self._gripper_command: Float64MultiArray | None = None  # reused every tick
        self.sent = 0
        self.episode_results: list[dict] = []  # "end" events from a simulator
        self.finished = threading.Event()  # set by a simulator's "finished" event

    def start(self) -> None:
        """Create the node, subscriptions and the command publisher; a second call does nothing."""
        if self._context is not None:
            return
        if self.record_path:
            from robotune.deploy.ros.recorder import McapRecorder

            self.recorder = McapRecorder(self.record_path)
        self._context, node = lean_node(self.node_name, self.domain_id)
        self._node, t = node, self.topics

        def poll(msg_type, topic, handler, qos, max_takes):
            # The callback is never called: no executor spins this node; `_take_all` hands messages to `handler`.
            self._polled.append((node.create_subscription(msg_type, topic, lambda msg: None, qos), msg_type, handler, max_takes))

        poll(JointState, t.joint_states, self._on_joint_state, JOINT_STATE_QOS, JOINT_STATE_QOS.depth)
        for key, source in t.observation_topics.items():
            poll(Float64MultiArray, source.topic,
                 lambda msg, received_at, key=key: self.cache.update_array(key, msg.data, now=received_at), SENSOR_QOS,
                 SENSOR_QOS.depth)
        poll(Bool, t.estop, self._on_estop, EVENT_QOS, EVENT_QOS.depth)
        poll(Empty, t.reset, self._on_reset, EVENT_QOS, EVENT_QOS.depth)
        if t.episode:
            poll(String, t.episode, self._on_episode, EVENT_QOS, EVENT_QOS.depth)
        # One command message, built once and refilled every tick: publish() serialises it before it
        # returns. Building a message per tick cost ~15 µs of the ~20 µs send on an idle core.
        n = len(self.joint_names)
        if t.command_type == "array":
            self._publisher = node.create_publisher(Float64MultiArray, self.command_topic, COMMAND_QOS)
            dimension = MultiArrayDimension(label="joints", size=n, stride=n)
            self._command = Float64MultiArray(layout=MultiArrayLayout(dim=[dimension]))
        else:
            self._publisher = node.create_publisher(JointTrajectory, self.command_topic, COMMAND_QOS)
            seconds = t.trajectory_time_from_start_periods / self.rate_hz
            point = JointTrajectoryPoint(time_from_start=Duration(sec=int(seconds), nanosec=int((seconds % 1.0) * 1e9)))
            self._command = JointTrajectory(joint_names=list(self.joint_names), points=[point])
        if self.gripper is not None:
            self._gripper_publisher = node.create_publisher(Float64MultiArray, self.gripper_command_topic, COMMAND_QOS)
            dimension = MultiArrayDimension(label=self.gripper, size=1, stride=1)
            self._gripper_command = Float64MultiArray(layout=MultiArrayLayout(dim=[dimension]))

    @property
    def command_topic(self) -> str:
        if self.shadow:
            return self.topics.shadow_command
        return self.topics.array_command if self.topics.command_type == "array" else self.topics.trajectory_command

    @property
    def gripper_command_topic(self) -> str | None:
        if self.gripper is None:
            return None
        return self.topics.shadow_gripper_command if self.shadow else self.topics.gripper_command

    @property
    def command_topics(self) -> tuple[str, ...]:
        return (self.command_topic,) + ((self.gripper_command_topic,) if self.gripper is not None else ())

    @property
    def command_joints(self) -> tuple[str, ...]:
        return self.joint_names + ((self.gripper,) if self.gripper is not None else ())

    def command_subscribers(self) -> int | None:
        """The fewest subscribers of the arm's and the gripper's command topics: an arm that moves without its
        gripper would carry out half of every action."""
        publishers = [p for p in (self._publisher, self._gripper_publisher) if p is not None]
        return min(p.get_subscription_count() for p in publishers) if self._publisher is not None else 0

    # -- message handlers (control thread, from `snapshot`) ---------------------------------
    def _on_joint_state(self, msg: JointState, received_at: float) -> None:
        self.cache.update_joints(msg.name, msg.position, msg.velocity, stamp_to_ns(msg.header.stamp), now=received_at)

    def _on_estop(self, msg: Bool, received_at: float) -> None:
        if msg.data:
            self._estop.set()

    def _on_reset(self, msg: Empty, received_at: float) -> None:
        self.reset_requests += 1
        self._reset_pending = True

    def take_reset_request(self) -> bool:
        pending, self._reset_pending = self._reset_pending, False
        return pending

    def clear_estop(self) -> None:
        self._estop.clear()

    def _on_episode(self, msg: String, received_at: float) -> None:
        try:
            event = json.loads(msg.data)
            kind = event.get("event")
            if kind == "start":
                self.cache.set_episode(int(event["episode"]))
            elif kind == "end":
                self.episode_results.append(event)
            elif kind == "finished":
                self.finished.set()
        except (ValueError, KeyError, TypeError):
            self.cache._reject(f"{self.topics.episode}: unreadable episode event {msg.data[:80]!r}")

    # -- control thread ----------------------------------------------------------------------
    def snapshot(self) -> ObservationSnapshot:
        self._take_all()
        return self.cache.snapshot()

    def prefetch(self) -> None:
        self._take_all()

    def _take_all(self) -> None:
        """Hand every waiting message to its handler (bounded per subscription), with its DDS reception time."""
        for sub, msg_type, handler, max_takes in self._polled:
            for msg, received_ns in take_waiting(sub, msg_type, max_takes):
                now, now_ns = time.monotonic(), time.time_ns()
                if self.recorder is not None:
                    self.recorder.record(sub.topic_name, msg, received_ns)
                handler(msg, now - min(max((now_ns - received_ns) / 1e9, 0.0), 1.0))

    def estop_requested(self) -> bool:
        return self._estop.is_set()

    def send(self, command: np.ndarray, source_stamp_ns: int) -> None:
        """command: (len(joint_names),), or with a gripper (len(joint_names) + 1,), the gripper's value last."""
        if self._publisher is None:
            raise RuntimeError("Ros2Transport.send() before start()")
        command = np.ascontiguousarray(command, np.float64)
        label = f"{STAMP_LABEL}{source_stamp_ns}" if self.topics.echo_obs_stamp else None
        if self._gripper_command is not None:
            # Before the arm's command: a driver that steps on the arm's command then already has the gripper's.
            self._gripper_command.data = array.array("d", command[-1:].tobytes())
            if label:
                self._gripper_command.layout.dim[0].label = label
            self._gripper_publisher.publish(self._gripper_command)
            if self.recorder is not None:
                self.recorder.record(self._gripper_publisher.topic_name, self._gripper_command, time.time_ns())
            command = command[:-1]
        values = array.array("d", command.tobytes())  # rclpy takes 'd' arrays as they are
        msg = self._command
        if isinstance(msg, Float64MultiArray):
            msg.data = values
            if label:
                msg.layout.dim[0].label = label
        else:
            msg.points[0].positions = values
            if label:
                msg.header.frame_id = label
        self._publisher.publish(msg)
        self.sent += 1
        if self.recorder is not None:
            self.recorder.record(self._publisher.topic_name, msg, time.time_ns())

    def rejection_summary(self) -> str:
        return self.cache.last_rejection

    def graph_publishers(self, topic: str) -> list[str]:
        """'node (gid ...)' for each publisher the ROS graph lists on `topic` (to match publisher keys with)."""
        if self._node is None:
            return []
        return [f"{info.node_namespace.rstrip('/')}/{info.node_name} (gid {bytes(info.endpoint_gid[:16]).hex()})"
                for info in self._node.get_publishers_info_by_topic(topic)]

    def diagnostics(self) -> dict:
        return {
            "joint_states_accepted": self.cache.accepted,
            "messages_rejected": self.cache.rejected,
            "last_rejection": self.cache.last_rejection,
            "joint_state_publishers": {k: dict(v) for k, v in self.cache.by_publisher.items()},
            "joint_state_publishers_in_graph": self.graph_publishers(self.topics.joint_states),
            "command_topic": self.command_topic,
            **({"gripper_command_topic": self.gripper_command_topic} if self.gripper is not None else {}),
            "command_subscribers": self.command_subscribers(),
            "reset_requests": self.reset_requests,
            "commands_sent": self.sent,
            **({"recorded_messages": self.recorder.recorded, "record_dropped": self.recorder.dropped,
                "record_path": str(self.recorder.path)} if self.recorder else {}),
        }

    def close(self) -> None:
        if self._context is None:
            return
        self._polled.clear()
        self._publisher = self._gripper_publisher = None
        try:
            self._node.destroy_node()
        except Exception:  # the context is already gone
            pass
        self._context.try_shutdown()
        self._context = self._node = None
        if self.recorder is not None:
            self.recorder.close()
