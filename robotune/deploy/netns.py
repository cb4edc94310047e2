"""Confine ROS 2 (DDS) traffic to this host: run a command inside a private network namespace.

DDS discovers peers by multicast on every interface by default. Inside a fresh namespace whose only
interface is loopback (multicast routed to it), every packet stays on the host, whatever the DDS
settings. Tests, benchmarks and CI jobs that start DDS use this; it needs root and `unshare`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

INSIDE_FLAG = "ROBOTUNE_IN_PRIVATE_NETNS"
SETUP = 'ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo; exec "$@"'


def unavailable_reason() -> str | None:
    """Why a private namespace with ROS 2 cannot be had here, or None if it can."""
    if os.geteuid() != 0:
        return "needs root to create a private network namespace (unshare -n) for DDS"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs `unshare` and `ip` (util-linux, iproute2) for a private network namespace"
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return "rclpy is not installed (pip install 'robotune[ros]')"
    return None


def inside() -> bool:
    """True in a process started by this module inside the private namespace."""
    return os.environ.get(INSIDE_FLAG) == "1"


def confined_env(base: dict[str, str] | None = None, domain_id: int | None = None) -> dict[str, str]:
    """Environment for processes in the namespace: discovery kept on localhost as a second guard."""
    env = dict(os.environ if base is None else base)
    env[INSIDE_FLAG] = "1"
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def run_in_private_netns(
    argv: list[str], timeout_s: float, env: dict[str, str], cwd: str | None = None, capture: bool = True
) -> subprocess.CompletedProcess:
    """Run argv inside a fresh network namespace; raises subprocess.TimeoutExpired after timeout_s."""
    command = ["unshare", "-n", "bash", "-c", SETUP, "_", *argv]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=capture, text=True, timeout=timeout_s)


def reexec_in_private_netns(timeout_s: float, env: dict[str, str] | None = None) -> int:
    """Re-run this Python script inside a private namespace, streaming its output; returns its exit code."""
    reason = unavailable_reason()
    if reason:
        print(f"cannot confine DDS: {reason}", file=sys.stderr)
        return 2
    argv = [sys.executable, *sys.argv]
    return run_in_private_netns(argv, timeout_s, confined_env(env), capture=False).returncode
