"""Entry point for the ROS 2 tests: re-runs them inside a private network namespace.

The ROS tests themselves live in test_ros2_faults.py and test_ros2_gripper.py and skip unless they
are inside the namespace; this test starts them there (one subprocess, bounded in time) and reports their output.
"""

from __future__ import annotations

import os

import pytest

from tests.deploy import netns

pytestmark = pytest.mark.ros


@pytest.mark.skipif(netns.inside(), reason="already inside the private namespace")
def test_ros2_suite_in_private_network_namespace():
    reason = netns.unavailable_reason()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the ROS 2 tests, but {reason}")  # .ci/run installs everything they need
    if reason:
        pytest.skip(reason)
    argv = netns.python_argv("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/deploy/test_ros2_faults.py",
                             "tests/deploy/test_ros2_gripper.py")
    result = netns.run_in_private_netns(argv, timeout_s=600)
    print(result.stdout[-6000:])
    print(result.stderr[-3000:])
    assert result.returncode == 0, f"ROS 2 tests failed inside the namespace:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert " passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1]
