"""Record a deploy session to MCAP: every message the runner takes and every command it sends.

The file is what `ros2 bag record -s mcap` would write: channels with "cdr" message encoding and
"ros2msg" schemas (the message definition with its dependencies appended, as rosbag2 stores
them), so Foxglove, `ros2 bag play` and the `mcap` CLI read it. Messages are serialised to CDR by
rclpy on the control thread (~10-20 µs each) and written by a background thread, so file I/O
never runs inside a tick. The queue is bounded: if the disk falls behind, messages are dropped
and counted (`dropped`), the control loop is never blocked.

Log times are DDS reception times for incoming messages and send times for commands (system
clock, ns), so a recording shows each command next to the state it was computed from.
"""

from __future__ import annotations

import queue
import re
import sys
import threading
from pathlib import Path

from rclpy.serialization import serialize_message

MSG_SEPARATOR = "=" * 80
BUILTIN_TYPES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
}


def message_name(msg_type: type) -> str:
    """'sensor_msgs/msg/JointState' for the rclpy class (the type name rosbag2 and Foxglove expect)."""
    package = msg_type.__module__.split(".")[0]
    return f"{package}/msg/{msg_type.__name__}"


def _msg_file(package: str, name: str) -> Path:
    path = Path(sys.prefix) / "share" / package / "msg" / f"{name}.msg"
    if not path.is_file():
        raise FileNotFoundError(f"no message definition for {package}/{name} at {path} (is the ROS 2 package installed?)")
    return path


def message_definition(package: str, name: str) -> str:
    """The .msg text of package/name followed by every message type it uses, depth first, each once."""
    seen: set[str] = set()
    parts = [_msg_file(package, name).read_text()]
    pending = [(package, parts[0])]
    while pending:
        owner, text = pending.pop(0)
        for dependency in _complex_field_types(owner, text):
            if dependency in seen:
                continue
            seen.add(dependency)
            dep_package, dep_name = dependency.split("/")
            dep_text = _msg_file(dep_package, dep_name).read_text()
            parts.append(f"{MSG_SEPARATOR}\nMSG: {dependency}\n{dep_text}")
            pending.append((dep_package, dep_text))
    return "\n".join(parts)


def _complex_field_types(package: str, text: str) -> list[str]:
    """'pkg/Name' of every non-builtin field type in a .msg text (constants and comments skipped)."""
    types = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(None, 1)
        if len(fields) < 2 or re.match(r"[A-Z][A-Z0-9_]*\s*=", fields[1]):
            continue  # blank, comment, or a constant ("uint8 FOO=1")
        base = re.sub(r"<=\d+$", "", re.sub(r"\[[^\]]*\]$", "", fields[0]))  # drop [], [N], [<=N], then <=N
        if base in BUILTIN_TYPES:
            continue
        types.append(base.replace("/msg/", "/") if "/" in base else f"{package}/{base}")
    return types


class McapRecorder:
    """`record(topic, msg, time_ns)` from the control thread; `close()` finishes the file."""

    def __init__(self, path: str | Path, max_queued: int = 100_000) -> None:
        from mcap.writer import Writer

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = open(self.path, "wb")
        self._writer = Writer(self._stream)
        self._writer.start(profile="ros2", library="robotune")
        self._schemas: dict[type, int] = {}
        self._channels: dict[str, int] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self.recorded = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._write_loop, name="mcap-recorder", daemon=True)
        self._thread.start()

    def record(self, topic: str, msg, time_ns: int) -> None:
        try:
            self._queue.put_nowait((topic, type(msg), serialize_message(msg), time_ns))
        except queue.Full:
            self.dropped += 1

    def _channel(self, topic: str, msg_type: type) -> int:
        if topic not in self._channels:
            if msg_type not in self._schemas:
                full_name = message_name(msg_type)
                package, _, name = full_name.split("/")
                definition = message_definition(package, name).encode()
                self._schemas[msg_type] = self._writer.register_schema(full_name, "ros2msg", definition)
            self._channels[topic] = self._writer.register_channel(topic, "cdr", self._schemas[msg_type])
        return self._channels[topic]

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            topic, msg_type, data, time_ns = item
            self._writer.add_message(self._channel(topic, msg_type), log_time=time_ns, data=data, publish_time=time_ns)
            self.recorded += 1

    def close(self) -> None:
        """Write what is queued, then the summary; the file is complete after this returns."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        self._writer.finish()
        self._stream.close()
