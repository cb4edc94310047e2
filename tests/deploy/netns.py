"""Test-side helpers over `robotune.deploy.netns`: a ROS_DOMAIN_ID per test and the repo on PYTHONPATH."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

from robotune.deploy.netns import confined_env, inside, run_in_private_netns as _run, unavailable_reason

REPO = Path(__file__).resolve().parents[2]
_domain_ids = itertools.count()

__all__ = ["inside", "next_domain_id", "python_argv", "ros_env", "run_in_private_netns", "unavailable_reason"]


def next_domain_id() -> int:
    """A ROS_DOMAIN_ID in 1..100 that differs between the tests of one process."""
    return 1 + (os.getpid() + next(_domain_ids) * 7) % 100


def ros_env(domain_id: int | None = None) -> dict[str, str]:
    env = confined_env(domain_id=domain_id if domain_id is not None else next_domain_id())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def run_in_private_netns(argv: list[str], timeout_s: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return _run(argv, timeout_s, env or ros_env(), cwd=str(REPO))


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]
