"""A gripper over real ROS 2: the runner's gripper topic, and the simulator driver's gripper, inside a private namespace.

Started by test_ros2_netns.py with test_ros2_faults.py (whose FakeDriver plays ros2_control's arm);
skipped when collected directly outside the namespace.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.deploy import netns

if not netns.inside():
    pytest.skip("runs inside a private network namespace, started by test_ros2_netns.py", allow_module_level=True)

from std_msgs.msg import Bool, Float64MultiArray  # noqa: E402

from robotune.deploy.ros.node import COMMAND_QOS, lean_node  # noqa: E402
from robotune.deploy.ros.topics import RosTopics  # noqa: E402
from robotune.deploy.ros.transport import Ros2Transport, command_source_stamp  # noqa: E402
from robotune.deploy.runner import PolicyRunner, RunnerConfig  # noqa: E402
from robotune.deploy.safety import SafetyConfig  # noqa: E402
from tests.deploy.fakes import ARM, HAND, TASK_WITH_HAND, GoalPolicy  # noqa: E402
from tests.deploy.test_ros2_faults import ARRAY_COMMAND, GOAL_TOPIC, RATE, FakeDriver, Running, wait_until  # noqa: E402

GRIPPER_COMMAND = RosTopics().gripper_command


class RecordingTransport(Ros2Transport):
    """Keeps every command the runner hands over: the safety layer's output, in the controllers' order."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handed: list[tuple[np.ndarray, int]] = []

    def send(self, command: np.ndarray, source_stamp_ns: int) -> None:
        self.handed.append((np.array(command, dtype=np.float64), source_stamp_ns))
        super().send(command, source_stamp_ns)


@pytest.fixture
def domain_id() -> int:
    return netns.next_domain_id()


def test_the_gripper_topic_carries_the_safety_layers_output_and_an_estop_keeps_the_grip(domain_id):
    driver = FakeDriver(domain_id)
    received: dict[str, list[tuple[np.ndarray, int | None]]] = {ARRAY_COMMAND: [], GRIPPER_COMMAND: []}
    for topic, values in received.items():
        driver.ros.node.create_subscription(
            Float64MultiArray, topic, lambda msg, values=values: values.append((np.asarray(msg.data), command_source_stamp(msg))),
            COMMAND_QOS)
    transport = RecordingTransport(ARM.command_order, RATE, RosTopics(observation_topics=GOAL_TOPIC), domain_id=domain_id,
                                   gripper=HAND.name)
    config = RunnerConfig(rate_hz=RATE, configure_timeout_s=5.0,
                          safety=SafetyConfig(warmup_ticks=0, ramp_speed=None, tracking_bound=None))
    # the hand is asked for 3 * goal.x: beyond its limits at |goal.x| = 0.5
    runner = PolicyRunner(GoalPolicy(hand_gain=3.0), TASK_WITH_HAND, transport, config, observation_topics=GOAL_TOPIC)
    grip = received[GRIPPER_COMMAND]
    try:
        driver.goal = [0.5, -0.5]  # the hand is asked for 1.5: clipped to 1.0
        driver.stream(True)
        with Running(runner):
            assert wait_until(lambda: any(v[0] == 1.0 for v, _ in grip), 5.0)
            driver.goal = [-0.5, -0.5]  # now asked for -1.5: down to -1.0 at 0.2 per tick
            assert wait_until(lambda: grip[-1][0][0] == -1.0, 5.0)
            driver.pub_estop.publish(Bool(data=True))
            assert wait_until(lambda: runner.stats()["estop_ticks"] >= 10, 5.0)
            stats = runner.stats()
        assert wait_until(lambda: len(grip) == len(transport.handed) == len(received[ARRAY_COMMAND]), 2.0)
    finally:
        driver.close()
    handed = [command for command, _ in transport.handed]
    # what goes out on each topic is the safety layer's output, tick by tick, with the tick's observation stamp
    np.testing.assert_array_equal([values for values, _ in grip], [command[-1:] for command in handed])
    np.testing.assert_array_equal([values for values, _ in received[ARRAY_COMMAND]], [command[:-1] for command in handed])
    stamps = [stamp for _, stamp in transport.handed]
    assert [stamp for _, stamp in grip] == [stamp for _, stamp in received[ARRAY_COMMAND]] == stamps
    hand = np.array([command[-1] for command in handed])
    assert hand[0] == 0.0 and hand.max() == 1.0 and hand.min() == -1.0  # idle first; never past the limits asked for
    assert np.max(np.abs(np.diff(hand))) <= 0.2 + 1e-12 and stats["gripper_clipped_ticks"] > 0
    assert stats["gripper_rate_limited_ticks"] >= 9  # 1.0 -> -1.0 in steps of 0.2
    # the e-stop holds the arm and repeats the hand's last command: it does not let go
    held = stats["estop_ticks"]
    assert np.all(hand[-held - 1:] == -1.0)
    assert all(np.array_equal(command[:-1], handed[-held - 1][:-1]) for command in handed[-held:])


def test_the_simulator_driver_moves_robosuites_gripper_and_holds_it_through_bad_commands(domain_id, capfd):
    from robotune.core.task import build_task
    from robotune.deploy.ros.simulator_driver import SimulatorDriverNode, parse_args
    from robotune.deploy.task_env_robot import TaskEnvRobot

    task = build_task({"name": "lift", "controller": "JOINT_POSITION"})
    sim = TaskEnvRobot(task.make_env(), task.spec, task.spec.robot, seed=0)
    node = SimulatorDriverNode(sim, parse_args(["--task", "lift", "--domain-id", str(domain_id), "--reset-gap-s", "0"]))
    context, peer = lean_node("gripper_peer", domain_id)
    publisher = peer.create_publisher(Float64MultiArray, GRIPPER_COMMAND, COMMAND_QOS)
    robosuite_gripper = sim.env.suite_env.robots[0].gripper["right"]

    def send(values: list[float]) -> None:
        taken = node.gripper_commands_received + node.malformed_gripper_commands
        publisher.publish(Float64MultiArray(data=values))
        assert wait_until(lambda: node._take_commands() or node.gripper_commands_received + node.malformed_gripper_commands
                          > taken, 5.0), f"the driver did not take {values}"

    def steps(n: int) -> float:
        """n control steps holding the arm where it is; returns finger 1's position (m)."""
        for _ in range(n):
            node._step(arm)
        return sim.arrays()["gripper"][0]

    try:
        node.start_episode()
        arm = sim.joint_positions()
        assert wait_until(lambda: publisher.get_subscription_count() > 0, 10.0)
        at_start = sim.arrays()["gripper"][0]
        send([1.0])
        closed = steps(8)
        np.testing.assert_array_equal(robosuite_gripper.current_action, [-1.0, 1.0])  # fingers commanded shut
        for bad in ([float("nan")], [0.5, 0.5], []):
            send(bad)
        still_closed = steps(4)
        np.testing.assert_array_equal(robosuite_gripper.current_action, [-1.0, 1.0])
        node._step(arm, source=12345)  # an arm command for a state the gripper has not answered: held, counted
        send([-1.0])
        opened = steps(12)
        np.testing.assert_array_equal(robosuite_gripper.current_action, [1.0, -1.0])
        summary = node.summary()
    finally:
        peer.destroy_node()
        context.try_shutdown()
        node.close()
        sim.env.close()
    assert closed < at_start - 0.01 and still_closed <= closed + 1e-3 and opened > at_start  # m
    assert summary["gripper_commands_received"] == 2 and summary["malformed_gripper_commands"] == 3
    assert summary["gripper_commands_stale"] == 1 and summary["invalid_commands"] == 0
    err = capfd.readouterr().err
    assert "ignored gripper command on /gripper_controller/commands: expected 1 finite value, got [nan]; gripper " \
           "'gripper' holds 1" in err
    assert "got [0.5, 0.5]" in err and "got []" in err
