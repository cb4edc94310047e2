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

    Malformed messages are rejected whole (and counted, with the reason kept for error messages),
    so a bad message never overwrites a good reading; the watchdog then sees the reading age.
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
        self.last_seen_names: tuple[str, ...] = ()

    def _reject(self, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            self.last_rejection = reason

    def update_joints(self, names, position, velocity, stamp_ns: int, now: float | None = None) -> bool:
        """Store one JointState; returns False (and records why) if it was malformed."""
        now = time.monotonic() if now is None else now
        names = tuple(names)
        self.last_seen_names = names
        n = len(names)
        if len(position) != n or (len(velocity) not in (0, n)):
            self._reject(
                f"JointState on {self.joint_topic}: {n} names but {len(position)} positions and {len(velocity)} velocities"
            )
            return False
        if len(set(names)) != n:
            self._reject(f"JointState on {self.joint_topic}: duplicate joint names {list(names)}")
            return False
        wanted = [(i, name) for i, name in enumerate(names) if name in self.joint_names]
        if not wanted:
            self._reject(
                f"JointState on {self.joint_topic} names none of the robot's joints {list(self.joint_names)}; got {list(names)}"
            )
            return False
        with self._lock:
            for i, name in wanted:
                vel = float(velocity[i]) if len(velocity) else None
                self._snapshot.joints[name] = JointReading(float(position[i]), vel, now)
            self._snapshot.source_stamp_ns = int(stamp_ns)
            self.accepted += 1
        return True

    def update_array(self, key: str, data, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        source = self.array_topics[key]
        if len(data) != len(source.fields):
            self._reject(f"{source.topic}: expected {len(source.fields)} values {list(source.fields)}, got {len(data)}")
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

    def joint_positions(self, snapshot: ObservationSnapshot) -> np.ndarray:
        """Measured positions in the robot's joint order (for anchoring the safety layer)."""
        missing = [n for n in self.robot.joint_names if n not in snapshot.joints]
        if missing:
            raise ObservationError(f"no reading yet for joints {missing}")
        return np.array([snapshot.joints[n].position for n in self.robot.joint_names], dtype=np.float64)
