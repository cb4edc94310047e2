"""From named robot signals to the policy's observation vector, in `TaskSpec.obs_names` order.

Every observation entry is named `<source>.<field>`: a joint of the robot with field `pos` or
`vel` (read from JointState by joint name, never by index: joint_state_broadcaster does not
guarantee an order), or an extra array topic with its own field names (the goal as
Float64MultiArray `[x, y]` gives `goal.x`, `goal.y`). The layout is resolved once, so a task whose
observation cannot be built from the configured topics fails at configure time, naming the entry.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from robotune.core.spec import RobotSpec, TaskSpec

JOINT_FIELDS = {"pos": "position", "vel": "velocity"}


class ObservationError(ValueError):
    """An observation cannot be built; the message names the joint, topic or entry."""


@dataclass(frozen=True)
class ArrayTopic:
    """An extra observation source: a Float64MultiArray whose entries are named `fields`."""

    key: str  # the `<source>` in obs names, e.g. "goal"
    topic: str  # e.g. "/goal"
    fields: tuple[str, ...]  # e.g. ("x", "y")
    # Watchdog on this topic: None means none. A goal is a set-point that may be published once per
    # episode, so it is not a sensor that goes stale; joint states always are.
    max_age_s: float | None = None


@dataclass
class JointReading:
    position: float
    velocity: float | None  # None when the JointState carried no velocities
    received_at: float  # time.monotonic() at reception
    source: str = ""  # the publisher it came from (see `publisher_key`)


MAX_SOURCES = 32  # publishers tracked one by one in the counters; more are pooled under "other"


def publisher_key(names) -> str:
    """Which publisher a JointState came from, as the joint names it carries.

    Jazzy's rclpy (7.1.6) hands out no publisher GID with a taken message (its message info has
    timestamps and sequence numbers only), but each /joint_states publisher (an arm's broadcaster,
    a gripper, a mock) keeps publishing the same joints: the names identify it, and the transport's
    diagnostics list the publishers the ROS graph knows (node name and GID) to match them with.
    """
    return "[" + ", ".join(str(n)[:40] for n in list(names)[:8]) + (", ...]" if len(names) > 8 else "]")


@dataclass
class ObservationSnapshot:
    """The latest value of every source, as the transport has it right now."""

    joints: dict[str, JointReading] = field(default_factory=dict)
    arrays: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)  # key -> (data, received_at)
    source_stamp_ns: int = 0  # header stamp of the newest JointState used; echoed with the command
    episode: int | None = None  # simulator episode counter, None on a real robot
    episode_started_at: float = 0.0  # time.monotonic() when that episode's start event arrived


class SignalCache:
    """Thread-safe latest-value store, written by transport callbacks and read by the control loop.

    Joint states are merged by joint name: each joint keeps its newest value, time and publisher,
    so a message about other joints (a gripper, a second arm) never displaces this robot's. Such
    messages are counted per publisher, not rejected. Malformed messages are rejected whole and
    counted per publisher, with the reason kept for error messages, so a bad message never
    overwrites a good reading; the watchdog then sees the reading age. A non-finite value for one
    of this robot's joints is stored as it is: the safety layer holds on it.
    """

    def __init__(self, joint_names: tuple[str, ...], array_topics: dict[str, ArrayTopic], joint_topic: str) -> None:
        self.joint_names = joint_names
        self.array_topics = array_topics
        self.joint_topic = joint_topic
        self._lock = threading.Lock()
        self._snapshot = ObservationSnapshot()
        self.rejected = 0
        self.accepted = 0
        self.last_rejection = ""
        self.last_seen_names: tuple[str, ...] = ()  # of the last JointState that named none of this robot's joints
        # per publisher (publisher_key): {"accepted": n, "other_joints": n, "rejected": n, "last_rejection": str}
        self.by_publisher: dict[str, dict] = {}
        self._publisher_keys: dict[tuple[str, ...], str] = {}

    def _count(self, source: str, outcome: str, reason: str = "") -> None:
        if source not in self.by_publisher and len(self.by_publisher) >= MAX_SOURCES:
            source = "other"
        counts = self.by_publisher.setdefault(source, {"accepted": 0, "other_joints": 0, "rejected": 0, "last_rejection": ""})
        counts[outcome] += 1
        if reason:
            counts["last_rejection"] = reason

    def _reject(self, reason: str, source: str = "") -> None:
        with self._lock:
            self.rejected += 1
            self.last_rejection = reason
            self._count(source or "unknown", "rejected", reason)

    def update_joints(self, names, position, velocity, stamp_ns: int, now: float | None = None) -> bool:
        """Merge one JointState by joint name; returns False (and records why) if it was rejected."""
        now = time.monotonic() if now is None else now
        names = tuple(names)
        source = self._publisher_keys.get(names)
        if source is None:  # computed once per joint-name list: this runs for every JointState
            source = publisher_key(names)
            if len(self._publisher_keys) < 4 * MAX_SOURCES:
                self._publisher_keys[names] = source
        n = len(names)
        if len(position) != n or (len(velocity) not in (0, n)):
            self._reject(f"JointState on {self.joint_topic} from publisher {source}: {n} names but "
                         f"{len(position)} positions and {len(velocity)} velocities", source)
            return False
        if len(set(names)) != n:
            self._reject(f"JointState on {self.joint_topic} from publisher {source}: duplicate joint names", source)
            return False
        wanted = [(i, name) for i, name in enumerate(names) if name in self.joint_names]
        with self._lock:
            if not wanted:
                self.last_seen_names = names
                self._count(source, "other_joints")
                return True
            for i, name in wanted:
                vel = float(velocity[i]) if len(velocity) else None
                self._snapshot.joints[name] = JointReading(float(position[i]), vel, now, source)
            self._snapshot.source_stamp_ns = int(stamp_ns)
            self.accepted += 1
            self._count(source, "accepted")
        return True

    def update_array(self, key: str, data, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        source = self.array_topics[key]
        if len(data) != len(source.fields):
            self._reject(f"{source.topic}: expected {len(source.fields)} values {list(source.fields)}, got {len(data)}",
                         source.topic)
            return False
        with self._lock:
            self._snapshot.arrays[key] = (np.asarray(data, dtype=np.float64).copy(), now)
        return True

    def set_episode(self, episode: int, now: float | None = None) -> None:
        with self._lock:
            self._snapshot.episode = episode
            self._snapshot.episode_started_at = time.monotonic() if now is None else now

    def snapshot(self) -> ObservationSnapshot:
        with self._lock:
            s = self._snapshot
            return ObservationSnapshot(dict(s.joints), dict(s.arrays), s.source_stamp_ns, s.episode, s.episode_started_at)


class ObservationLayout:
    """Resolves `TaskSpec.obs_names` against the robot's joints and the configured array topics."""

    def __init__(self, task: TaskSpec, robot: RobotSpec, array_topics: dict[str, ArrayTopic]) -> None:
        self.task = task
        self.robot = robot
        self.array_topics = array_topics
        joints = set(robot.joint_names)
        self._entries: list[tuple[str, str, int | str]] = []  # ("joint", field, name) or ("array", key, index)
        for i, obs_name in enumerate(task.obs_names):
            source, _, fld = obs_name.rpartition(".")
            if source in joints and fld in JOINT_FIELDS:
                self._entries.append(("joint", JOINT_FIELDS[fld], source))
            elif source in array_topics and fld in array_topics[source].fields:
                self._entries.append(("array", source, array_topics[source].fields.index(fld)))
            else:
                raise ObservationError(
                    f"observation '{obs_name}' (entry {i} of task '{task.name}' obs_names) has no source: expected "
                    f"'<joint>.pos|vel' for a joint of robot '{robot.name}' {list(robot.joint_names)}, or "
                    f"'<key>.<field>' for a configured observation topic {self._describe_topics()}"
                )
        self.needs_velocity = any(kind == "joint" and f == "velocity" for kind, f, _ in self._entries)

    def _describe_topics(self) -> dict[str, list[str]]:
        return {k: list(t.fields) for k, t in self.array_topics.items()}

    def assemble(self, snapshot: ObservationSnapshot, now: float | None = None) -> tuple[np.ndarray, float]:
        """(obs (obs_dim,), age_s of its oldest input). Raises ObservationError naming what is missing."""
        now = time.monotonic() if now is None else now
        obs = np.empty(len(self._entries), dtype=np.float64)
        oldest = now
        for i, (kind, a, b) in enumerate(self._entries):
            if kind == "joint":
                reading = snapshot.joints.get(b)
                if reading is None:
                    raise ObservationError(f"no reading yet for joint '{b}' (observation '{self.task.obs_names[i]}')")
                value = reading.position if a == "position" else reading.velocity
                if value is None:
                    raise ObservationError(
                        f"joint '{b}': the task needs its velocity ('{self.task.obs_names[i]}') but the JointState carries none"
                    )
                obs[i] = value
                oldest = min(oldest, reading.received_at)
            else:
                item = snapshot.arrays.get(a)
                if item is None:
                    raise ObservationError(f"no message yet on {self.array_topics[a].topic} (observation '{self.task.obs_names[i]}')")
                obs[i] = item[0][b]
                max_age = self.array_topics[a].max_age_s
                if max_age is not None and now - item[1] > max_age:
                    raise ObservationError(f"{self.array_topics[a].topic} is older than its max_age_s {max_age}")
        return obs, now - oldest

    def oldest_input(self, snapshot: ObservationSnapshot, now: float | None = None) -> str:
        """The input that makes an observation stale, for hold messages: which joint or topic, from where, how old."""
        now = time.monotonic() if now is None else now
        oldest, text = None, "no input"
        for name in self.robot.joint_names:
            reading = snapshot.joints.get(name)
            if reading is None:
                return f"joint '{name}' has no reading"
            if oldest is None or reading.received_at < oldest:
                oldest = reading.received_at
                text = f"joint '{name}' last came {now - reading.received_at:.3f} s ago from publisher {reading.source}"
        for key, source in self.array_topics.items():
            item = snapshot.arrays.get(key)
            if item is None:
                return f"nothing yet on {source.topic}"
            if source.max_age_s is not None and now - item[1] > source.max_age_s:
                return f"{source.topic} last came {now - item[1]:.3f} s ago (max_age_s {source.max_age_s})"
        return text

    def nonfinite_inputs(self, obs: np.ndarray, snapshot: ObservationSnapshot) -> str:
        """Which observation entries are non-finite and where they came from, for hold messages."""
        parts = []
        for i in np.flatnonzero(~np.isfinite(obs)).tolist():
            kind, a, b = self._entries[i]
            where = (f"publisher {snapshot.joints[b].source}" if kind == "joint" and b in snapshot.joints
                     else self.array_topics[a].topic if kind == "array" else "?")
            parts.append(f"'{self.task.obs_names[i]}' from {where}")
        return ", ".join(parts)

    def joint_positions(self, snapshot: ObservationSnapshot) -> np.ndarray:
        """Measured positions in the robot's joint order (for anchoring the safety layer)."""
        missing = [n for n in self.robot.joint_names if n not in snapshot.joints]
        if missing:
            raise ObservationError(f"no reading yet for joints {missing}")
        return np.array([snapshot.joints[n].position for n in self.robot.joint_names], dtype=np.float64)
