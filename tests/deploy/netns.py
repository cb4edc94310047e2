"""Run ROS 2 (DDS) code inside a private network namespace, so no discovery traffic leaves the host.

DDS multicasts by default; a namespace with only loopback (multicast routed to lo) keeps every
packet inside it. Needs root and `unshare`; callers skip with the reason otherwise.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSIDE_FLAG = "ROBOTUNE_IN_PRIVATE_NETNS"
_NETNS_SETUP = 'ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo; exec "$@"'
_domain_ids = itertools.count()


def unavailable_reason() -> str | None:
    """Why ROS tests cannot run here, or None if they can."""
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
    return os.environ.get(INSIDE_FLAG) == "1"


def next_domain_id() -> int:
    """A ROS_DOMAIN_ID in 1..100 that differs between the tests of one process."""
    return 1 + (os.getpid() + next(_domain_ids) * 7) % 100


def ros_env(domain_id: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env[INSIDE_FLAG] = "1"
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else next_domain_id())
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_in_private_netns(argv: list[str], timeout_s: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run argv inside a fresh network namespace; raises subprocess.TimeoutExpired after timeout_s."""
    command = ["unshare", "-n", "bash", "-c", _NETNS_SETUP, "_", *argv]
    return subprocess.run(command, cwd=REPO, env=env or ros_env(), capture_output=True, text=True, timeout=timeout_s)


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]
