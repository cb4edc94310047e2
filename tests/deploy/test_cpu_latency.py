"""The PM QoS wake-up latency request the runner holds while its control thread runs."""

from __future__ import annotations

import struct

import pytest

from robotune.deploy.cpu_latency import CpuLatencyRequest
from robotune.deploy.runner import DeployError, PolicyRunner, RunnerConfig
from robotune.deploy.stepped_transport import SteppedEnvTransport
from robotune.deploy.task_env_robot import TaskEnvRobot
from tests.deploy.fakes import ARM, TASK, FirstOrderArmEnv, GoalPolicy


def test_request_writes_the_bound_as_a_native_int_and_ends_on_close(tmp_path):
    device = tmp_path / "cpu_dma_latency"  # a plain file stands in for the character device
    device.write_bytes(b"")
    with CpuLatencyRequest(25, device) as request:
        assert request.held and request.error is None
        assert device.read_bytes() == struct.pack("i", 25)
    assert not request.held
    request.close()  # closing twice is harmless


def test_unavailable_device_is_reported_not_raised(tmp_path):
    device = tmp_path / "missing" / "cpu_dma_latency"
    request = CpuLatencyRequest(0, device)
    assert not request.held
    assert str(device) in request.error and "0 µs" in request.error


def test_no_bound_holds_nothing(tmp_path):
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")
    with CpuLatencyRequest(None, device) as request:
        assert not request.held and request.error is None
    assert device.read_bytes() == b""


def test_negative_bound_is_rejected():
    with pytest.raises(ValueError, match="cpu_latency_us must be >= 0"):
        CpuLatencyRequest(-1)


def test_runner_rejects_a_negative_bound_before_anything_runs():
    transport = SteppedEnvTransport(TaskEnvRobot(FirstOrderArmEnv(), TASK, ARM, episodes=1))
    with pytest.raises(DeployError, match="cpu_latency_us must be >= 0"):
        PolicyRunner(GoalPolicy(), TASK, transport, RunnerConfig(rate_hz=20.0, cpu_latency_us=-5),
                     observation_topics=transport.observation_topics())
