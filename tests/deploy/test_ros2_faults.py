"""Fault tests over real ROS 2 (rclpy + Fast DDS), run inside a private network namespace.

Started by test_ros2_netns.py; skipped when collected directly outside the namespace. A
`FakeDriver` (a real rclpy node in its own Context) plays ros2_control: it publishes /joint_states
in a scrambled order with an extra joint, publishes /goal, and records every command it receives,
mapping its data by the controller's own joint order (`controller_joints`), as a forward command
controller does. `OtherPublisher` plays a second /joint_states publisher (a gripper).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from tests.deploy import netns

if not netns.inside():
    pytest.skip("runs inside a private network namespace, started by test_ros2_netns.py", allow_module_level=True)

from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool, Empty, Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from robotune.deploy.observation import ArrayTopic  # noqa: E402
from robotune.deploy.ros.node import COMMAND_QOS, EVENT_QOS, SpinningNode  # noqa: E402
from robotune.deploy.ros.transport import Ros2Transport, command_source_stamp  # noqa: E402
from robotune.deploy.runner import DeployError, PolicyRunner, RunnerConfig  # noqa: E402
from robotune.deploy.safety import SafetyConfig, Verdict, is_within_limits  # noqa: E402
from robotune.deploy.ros.topics import RosTopics  # noqa: E402
from tests.deploy.fakes import ARM, TASK, GoalPolicy  # noqa: E402

RATE = 50.0
PERIOD = 1.0 / RATE
GOAL_TOPIC = {"goal": ArrayTopic("goal", "/goal", ("x", "y"))}
SCRAMBLED = ["elbow", "wrist_cam", "shoulder"]


ARRAY_COMMAND = "/forward_position_controller/commands"
SHADOW_COMMAND = "/robotune/shadow/commands"


class FakeDriver:
    """A ros2_control stand-in publishing joint states and recording commands with their arrival time.

    `commands` holds (arrival time, data in the controller's `controller_joints` order).
    """

    def __init__(self, domain_id: int, controller_joints=("shoulder", "elbow"), subscribe_commands: bool = True) -> None:
        self.ros = SpinningNode("fake_driver", domain_id)
        node = self.ros.node
        self.controller_joints = tuple(controller_joints)
        self.pub_joints = node.create_publisher(JointState, "/joint_states", COMMAND_QOS)
        self.pub_goal = node.create_publisher(Float64MultiArray, "/goal", COMMAND_QOS)
        self.pub_estop = node.create_publisher(Bool, "/emergency_stop", EVENT_QOS)
        self.pub_reset = node.create_publisher(Empty, "/robotune/reset", EVENT_QOS)
        self.commands: list[tuple[float, np.ndarray]] = []
        self.trajectories: list[JointTrajectory] = []
        self.shadow_commands: list[np.ndarray] = []
        if subscribe_commands:
            node.create_subscription(Float64MultiArray, ARRAY_COMMAND, self._on_command, COMMAND_QOS)
            node.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", self._on_trajectory,
                                     COMMAND_QOS)
        node.create_subscription(Float64MultiArray, SHADOW_COMMAND,
                                 lambda msg: self.shadow_commands.append(np.asarray(msg.data)), COMMAND_QOS)
        self.position = {"shoulder": 0.3, "elbow": -0.2, "wrist_cam": 0.0}
        self.goal = [1.0, -1.0]
        self._streaming = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._stream, daemon=True)
        self._thread.start()
        self.stamp_ns = 0

    def _on_command(self, msg: Float64MultiArray) -> None:
        self.commands.append((time.monotonic(), np.asarray(msg.data, dtype=np.float64)))

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        self.trajectories.append(msg)

    def publish(self, names, position, velocity=None, goal=None) -> None:
        self.stamp_ns += 1_000_000
        msg = JointState(name=list(names), position=[float(p) for p in position],
                         velocity=[float(v) for v in (velocity if velocity is not None else [0.0] * len(position))])
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(self.stamp_ns, 1_000_000_000)
        self.pub_joints.publish(msg)
        self.pub_goal.publish(Float64MultiArray(data=[float(g) for g in (goal if goal is not None else self.goal)]))

    def _stream(self) -> None:
        while not self._closed.wait(0.005):  # 200 Hz, bounded by close()
            if self._streaming.is_set():
                self.publish(SCRAMBLED, [self.position[n] for n in SCRAMBLED])

    def stream(self, on: bool) -> None:
        (self._streaming.set if on else self._streaming.clear)()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2.0)
        self.ros.close()


def wait_until(predicate, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def domain_id() -> int:
    return netns.next_domain_id()


@pytest.fixture
def driver(domain_id):
    d = FakeDriver(domain_id)
    yield d
    d.close()


def make_runner(domain_id, policy=None, command_type="array", warmup_ticks=0, timeout_s=3.0, record_path=None,
                robot=ARM, shadow=False, subscriber_timeout_s=2.0, **safety):
    """A runner over rclpy; by default without the ramp and the tracking bound: the driver's joints do not
    follow its commands (tests of them set ramp_speed, tracking_bound)."""
    topics = RosTopics(command_type=command_type, observation_topics=GOAL_TOPIC)
    transport = Ros2Transport(robot.command_order, RATE, topics, domain_id=domain_id, record_path=record_path, shadow=shadow)
    config = RunnerConfig(rate_hz=RATE, configure_timeout_s=timeout_s, shadow=shadow, subscriber_timeout_s=subscriber_timeout_s,
                          safety=SafetyConfig(**{"warmup_ticks": warmup_ticks, "ramp_speed": None, "tracking_bound": None, **safety}))
    return PolicyRunner(policy or GoalPolicy(), TASK, transport, config, robot=robot, observation_topics=GOAL_TOPIC)


class Running:
    """configure + activate on enter; deactivate + shutdown on exit, whatever happens."""

    def __init__(self, runner: PolicyRunner) -> None:
        self.runner = runner

    def __enter__(self) -> PolicyRunner:
        self.runner.configure()
        self.runner.activate()
        return self.runner

    def __exit__(self, *exc) -> None:
        self.runner.shutdown()


def assert_all_safe(commands) -> None:
    assert commands, "the driver received no commands"
    for _, c in commands:
        assert is_within_limits(c, ARM), f"unsafe command {c}"
    steps = [np.max(np.abs(b - a)) for (_, a), (_, b) in zip(commands, commands[1:])]
    assert max(steps, default=0.0) <= 3.0 * PERIOD + 1e-9, f"a command moved faster than the rate limit: {max(steps)}"


def test_tracks_the_goal_mapping_joints_by_name(driver, domain_id):
    driver.stream(True)
    with Running(make_runner(domain_id)) as runner:
        assert wait_until(lambda: len(driver.commands) > 40, 5.0)
        stats = runner.stats()
    assert_all_safe(driver.commands)
    # Robot order is (shoulder, elbow): the runner first holds the measured (0.3, -0.2) while the
    # first chunk is planned, then shoulder rises to 1.0 and elbow falls to -1.0 at the rate limit.
    anchor = np.array([0.3, -0.2])
    np.testing.assert_allclose(driver.commands[0][1], anchor)
    first = next(c for _, c in driver.commands if not np.array_equal(c, anchor))
    last = driver.commands[-1][1]
    np.testing.assert_allclose(first, anchor + [3.0 * PERIOD, -3.0 * PERIOD], atol=1e-9)
    np.testing.assert_allclose(last, [1.0, -1.0], atol=1e-9)
    assert stats["latched"] is None and stats["transport"]["messages_rejected"] == 0


def test_trajectory_commands_name_joints_and_arrive_in_time(driver, domain_id):
    driver.stream(True)
    with Running(make_runner(domain_id, command_type="trajectory")):
        assert wait_until(lambda: len(driver.trajectories) > 10, 5.0)
    msg = driver.trajectories[-1]
    assert list(msg.joint_names) == ["shoulder", "elbow"] and len(msg.points) == 1
    assert msg.points[0].time_from_start.nanosec == pytest.approx(1.5 * PERIOD * 1e9, rel=1e-6)
    assert command_source_stamp(msg) is not None


def test_observation_dropout_holds_within_one_period_and_recovers(driver, domain_id):
    driver.goal = [1.9, -2.4]  # far away, so the target keeps moving until the dropout
    driver.stream(True)
    with Running(make_runner(domain_id)) as runner:
        assert wait_until(lambda: len(driver.commands) > 10, 5.0)
        driver.stream(False)
        stopped_at = time.monotonic()
        time.sleep(0.3)
        # A tick within one period of the last message may still use it; allow that plus delivery time.
        after = [c for t, c in driver.commands if t > stopped_at + 2 * PERIOD + 0.01]
        assert len(after) >= 5, "holding must keep re-sending the last safe target"
        assert all(np.array_equal(c, after[0]) for c in after), "the target moved without fresh observations"
        assert runner.stats()["stale_ticks"] >= 5
        n = len(driver.commands)
        driver.stream(True)
        assert wait_until(lambda: len(driver.commands) > n + 10, 3.0)
        assert not np.array_equal(driver.commands[-1][1], after[0]), "commands must resume after a dropout"
    assert_all_safe(driver.commands)


def test_nan_for_this_robots_joint_holds_at_once_and_latches_when_it_persists(driver, domain_id):
    driver.goal = [1.9, -2.4]  # far away, so the target keeps moving unless held
    driver.stream(True)
    with Running(make_runner(domain_id, nonfinite_latch_ticks=25, nonfinite_latch_s=None)) as runner:
        assert wait_until(lambda: len(driver.commands) > 5, 5.0)
        driver.position["elbow"] = float("nan")  # a glitch of about 4 ticks
        assert wait_until(lambda: runner.stats()["nonfinite_ticks"] >= 1, 2.0)
        held_at = time.monotonic()
        time.sleep(4 * PERIOD)
        driver.position["elbow"] = -0.2
        recovered_at = time.monotonic()
        n = len(driver.commands)
        assert wait_until(lambda: len(driver.commands) > n + 10, 3.0)
        stats = runner.stats()
        assert stats["latched"] is None and 1 <= stats["nonfinite_ticks"] < 25, stats
        during = [c for t, c in driver.commands if held_at + 2 * PERIOD < t < recovered_at]
        assert during and all(np.array_equal(c, during[0]) for c in during), "a NaN reading must hold the target"
        assert not np.array_equal(driver.commands[-1][1], during[0]), "commands must resume after the glitch"
        driver.position["elbow"] = float("nan")  # now it persists: latched after 25 ticks
        assert wait_until(lambda: runner.stats()["latched"] == "fault", 3.0)
        assert "non-finite observation entries [1]" in runner.stats()["latch_reason"]
    assert_all_safe(driver.commands)


def test_nan_actions_latch_and_never_leave_the_limits(driver, domain_id):
    driver.stream(True)
    with Running(make_runner(domain_id, policy=GoalPolicy(nan_after=2))) as runner:
        assert wait_until(lambda: runner.stats()["latched"] == "fault", 5.0)
        time.sleep(0.1)
        assert "invalid action" in runner.stats()["latch_reason"]
    assert_all_safe(driver.commands)


def test_wrong_joint_names_fail_configure_naming_the_joint(driver, domain_id):
    driver.position = {"shoulder_joint": 0.0, "elbow_joint": 0.0}
    driver._thread_names = list(driver.position)
    stop = threading.Event()
    publisher = threading.Thread(
        target=lambda: [driver.publish(["shoulder_joint", "elbow_joint"], [0.0, 0.0]) for _ in range(200) if not stop.wait(0.01)],
        daemon=True,
    )
    publisher.start()
    with pytest.raises(DeployError) as err:
        make_runner(domain_id, timeout_s=1.0).configure()
    stop.set()
    publisher.join(timeout=3)
    message = str(err.value)
    assert "joint 'shoulder'" in message and "/joint_states" in message and "shoulder_joint" in message


def test_wrong_lengths_fail_configure_with_the_counts(driver, domain_id):
    stop = threading.Event()
    publisher = threading.Thread(
        target=lambda: [driver.publish(["shoulder", "elbow"], [0.0]) for _ in range(200) if not stop.wait(0.01)],
        daemon=True,
    )
    publisher.start()
    with pytest.raises(DeployError, match=r"2 names but 1 positions"):
        make_runner(domain_id, timeout_s=1.0).configure()
    stop.set()
    publisher.join(timeout=3)


def test_estop_stops_and_latches(driver, domain_id):
    driver.goal = [1.9, -2.4]
    driver.stream(True)
    with Running(make_runner(domain_id)) as runner:
        assert wait_until(lambda: len(driver.commands) > 5, 5.0)
        driver.pub_estop.publish(Bool(data=True))
        sent_at = time.monotonic()
        assert wait_until(lambda: runner.stats()["latched"] == "estop", 1.0)
        driver.pub_estop.publish(Bool(data=False))  # releasing the button does not clear the latch
        time.sleep(0.3)
        after = [c for t, c in driver.commands if t > sent_at + 2 * PERIOD + 0.01]
        assert len(after) >= 5 and all(np.array_equal(c, after[0]) for c in after)
        assert runner.stats()["latched"] == "estop"
    assert_all_safe(driver.commands)


def test_fuzzed_malformed_messages_never_crash_or_command_unsafely(driver, domain_id):
    rng = np.random.default_rng(0)
    names_pool = ["shoulder", "elbow", "wrist_cam", "", "SHOULDER", "elbow ", "x" * 300]
    values_pool = [0.0, 0.5, -1e9, 1e9, np.nan, np.inf, -np.inf, 1e-300]
    driver.stream(True)
    with Running(make_runner(domain_id)) as runner:
        assert wait_until(lambda: len(driver.commands) > 5, 5.0)
        deadline = time.monotonic() + 20.0
        sent = 0
        while sent < 1200 and time.monotonic() < deadline:
            n_names = int(rng.integers(0, 5))
            names = list(rng.choice(names_pool, n_names)) if n_names else []
            position = list(rng.choice(values_pool, int(rng.integers(0, 5))))
            velocity = list(rng.choice(values_pool, int(rng.integers(0, 5))))
            goal = list(rng.choice(values_pool, int(rng.integers(0, 4))))
            driver.publish(names, position, velocity, goal)
            sent += 1
            if sent % 4 == 0:
                time.sleep(PERIOD)  # the runner parses every queued JointState and the newest /goal at each tick
        time.sleep(0.2)
        stats = runner.stats()
        assert runner._thread is not None and runner._thread.is_alive(), "the control loop died"
        assert runner._fatal is None
    assert sent >= 1000
    # Every queued JointState reaches the parser (the goal topic keeps only its newest), so most of
    # the malformed ones are rejected, each counted for its publisher.
    assert stats["transport"]["messages_rejected"] > 300
    assert sum(p["rejected"] for p in stats["transport"]["joint_state_publishers"].values()) > 300
    assert_all_safe(driver.commands)


def test_session_is_recorded_to_mcap(driver, domain_id, tmp_path):
    """Every state and goal taken and every command sent lands in a readable MCAP file with ros2msg schemas."""
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    path = tmp_path / "session.mcap"
    driver.stream(True)
    with Running(make_runner(domain_id, record_path=str(path))) as runner:
        assert wait_until(lambda: len(driver.commands) > 10, 5.0)
    stats = runner.stats()["transport"]
    types = {"/joint_states": JointState, "/goal": Float64MultiArray, "/forward_position_controller/commands": Float64MultiArray}
    counts = dict.fromkeys(types, 0)
    with open(path, "rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            assert channel.message_encoding == "cdr" and schema.encoding == "ros2msg"
            msg = deserialize_message(message.data, types[channel.topic])
            counts[channel.topic] += 1
            if channel.topic == "/joint_states":
                assert schema.name == "sensor_msgs/msg/JointState" and b"MSG: std_msgs/Header" in schema.data
                assert list(msg.name) == SCRAMBLED
    assert counts["/forward_position_controller/commands"] == stats["commands_sent"] > 10
    assert counts["/joint_states"] >= 10 and counts["/goal"] >= 10
    assert stats["record_dropped"] == 0 and stats["recorded_messages"] == sum(counts.values())


class OtherPublisher:
    """A second /joint_states publisher (a gripper) in its own node, streaming its own joints at `rate_hz`."""

    def __init__(self, domain_id: int, names=("gripper_left", "gripper_right"), rate_hz: float = 100.0) -> None:
        self.ros = SpinningNode("fake_gripper", domain_id)
        self.pub = self.ros.node.create_publisher(JointState, "/joint_states", COMMAND_QOS)
        self.names = list(names)
        self.position = [0.01] * len(self.names)
        self.sent = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._stream, args=(1.0 / rate_hz,), daemon=True)
        self._thread.start()

    def _stream(self, period: float) -> None:
        while not self._closed.wait(period):
            self.pub.publish(JointState(name=self.names, position=[float(p) for p in self.position],
                                        velocity=[0.0] * len(self.names)))
            self.sent += 1

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2.0)
        self.ros.close()


IN_CONTROLLER_ORDER = replace(ARM, command_joints=("elbow", "shoulder"))


@pytest.mark.parametrize("command_type", ["array", "trajectory"])
def test_controller_listing_joints_in_another_order_receives_correctly_ordered_commands(domain_id, command_type):
    driver = FakeDriver(domain_id, controller_joints=("elbow", "shoulder"))
    try:
        driver.stream(True)
        with Running(make_runner(domain_id, command_type=command_type, robot=IN_CONTROLLER_ORDER)):
            received = driver.commands if command_type == "array" else driver.trajectories
            assert wait_until(lambda: len(received) > 40, 5.0)
    finally:
        driver.close()
    if command_type == "array":
        by_name = dict(zip(driver.controller_joints, driver.commands[-1][1]))
        first = dict(zip(driver.controller_joints, driver.commands[0][1]))
    else:
        assert all(list(m.joint_names) == ["elbow", "shoulder"] for m in driver.trajectories)
        by_name = dict(zip(driver.trajectories[-1].joint_names, driver.trajectories[-1].points[0].positions))
        first = dict(zip(driver.trajectories[0].joint_names, driver.trajectories[0].points[0].positions))
    # the first command holds the measured pose (shoulder 0.3, elbow -0.2), the last reaches the goal (1, -1)
    assert first == pytest.approx({"shoulder": 0.3, "elbow": -0.2})
    assert by_name == pytest.approx({"shoulder": 1.0, "elbow": -1.0})


def test_second_publisher_with_other_joints_at_100hz_causes_no_holds(driver, domain_id):
    gripper = OtherPublisher(domain_id)
    try:
        driver.stream(True)
        # A tick holds when the arm's reading is older than 2 periods; when a gripper message displaced
        # the arm's from a depth-1 queue, about one tick in nine held (1/3 of ticks saw a gripper message last).
        with Running(make_runner(domain_id, obs_timeout_s=2 * PERIOD)) as runner:
            assert wait_until(lambda: len(driver.commands) > 5, 5.0)
            ticks_before = runner.stats()["ticks"]
            time.sleep(2.0)
            stats = runner.stats()
    finally:
        gripper.close()
    assert stats["ticks"] - ticks_before >= 80
    assert stats["stale_ticks"] == 0 and stats["latched"] is None, stats
    publishers = stats["transport"]["joint_state_publishers"]
    assert publishers["[gripper_left, gripper_right]"]["other_joints"] > 100
    assert publishers["[gripper_left, gripper_right]"]["rejected"] == 0
    assert stats["transport"]["messages_rejected"] == 0
    assert any("fake_gripper" in p for p in stats["transport"]["joint_state_publishers_in_graph"])


def test_nan_from_another_publisher_for_an_unrelated_joint_causes_no_hold(driver, domain_id):
    gripper = OtherPublisher(domain_id)
    gripper.position = [float("nan"), float("inf")]
    driver.position["wrist_cam"] = float("nan")  # an unactuated joint in the arm's own message: not this robot's
    try:
        driver.stream(True)
        with Running(make_runner(domain_id, obs_timeout_s=2 * PERIOD, nonfinite_latch_ticks=1)) as runner:
            assert wait_until(lambda: len(driver.commands) > 50, 5.0)
            stats = runner.stats()
    finally:
        gripper.close()
    assert gripper.sent > 50
    assert stats["nonfinite_ticks"] == 0 and stats["stale_ticks"] == 0 and stats["latched"] is None, stats
    np.testing.assert_allclose(driver.commands[-1][1], [1.0, -1.0], atol=1e-9)


@pytest.mark.parametrize("command_type,topic", [("array", ARRAY_COMMAND),
                                                ("trajectory", "/joint_trajectory_controller/joint_trajectory")])
def test_no_subscriber_on_the_command_topic_refuses_activation(domain_id, command_type, topic):
    driver = FakeDriver(domain_id, subscribe_commands=False)
    runner = make_runner(domain_id, command_type=command_type, subscriber_timeout_s=0.5)
    try:
        driver.stream(True)
        runner.configure()
        with pytest.raises(DeployError, match=f"refusing to activate: nothing subscribes to the command topic {topic}"):
            runner.activate()
        assert runner.state.value == "inactive" and runner.tick_index == 0
    finally:
        runner.shutdown()
        driver.close()


def test_start_pose_outside_the_limits_is_refused(driver, domain_id):
    driver.position["shoulder"] = 2.3  # limits [-2, 2]
    driver.stream(True)
    runner = make_runner(domain_id)
    try:
        runner.configure()
        with pytest.raises(DeployError, match=r"refusing to activate: joint 'shoulder' measures 2.3000 rad, outside \[-2.0, 2.0\]"):
            runner.activate()
        time.sleep(0.1)
    finally:
        runner.shutdown()
    assert driver.commands == [], "nothing may be sent when activation is refused"


def test_first_command_is_reached_by_a_ramp_within_the_configured_speed(driver, domain_id):
    ramp_speed = 1.0  # rad/s: 0.02 rad per tick at 50 Hz; the goal (1, -1) is 0.8 rad away on each joint
    driver.stream(True)
    with Running(make_runner(domain_id, ramp_speed=ramp_speed)) as runner:
        assert wait_until(lambda: runner.stats()["policy_ticks"] > 5, 5.0)
        stats = runner.stats()
    commands = np.array([c for _, c in driver.commands])
    steps = np.abs(np.diff(commands, axis=0)).max(axis=1)
    reached = int(np.flatnonzero(np.all(np.isclose(commands, [1.0, -1.0]), axis=1))[0])
    assert np.all(steps[:reached] <= ramp_speed * PERIOD + 1e-9), steps[:reached].max()
    assert reached >= 0.8 / (ramp_speed * PERIOD) - 1
    assert stats["ramp_ticks"] >= 39


def test_estop_and_an_operator_reset_rearm_through_the_ramp(driver, domain_id):
    driver.goal = [1.9, -1.9]
    driver.stream(True)
    with Running(make_runner(domain_id, ramp_speed=0.5)) as runner:
        assert wait_until(lambda: runner.stats()["ramp_ticks"] > 5, 5.0)
        driver.pub_estop.publish(Bool(data=True))
        assert wait_until(lambda: runner.stats()["latched"] == "estop", 2.0)
        assert runner.outcome == "estop"
        driver.pub_estop.publish(Bool(data=False))
        ramp_ticks = runner.stats()["ramp_ticks"]
        held = driver.commands[-1][1]
        driver.position.update(shoulder=float(held[0]), elbow=float(held[1]))  # the robot is where it was held
        driver.pub_reset.publish(Empty())
        assert wait_until(lambda: runner.stats()["ramp_ticks"] > ramp_ticks + 5, 3.0)
        stats = runner.stats()
    assert stats["latched"] is None and runner.outcome == "clean"
    assert stats["resets"][0]["latched"] == "estop" and stats["resets"][0]["outcome"] == "re-armed through the ramp"
    after = np.array([c for t, c in driver.commands])[-(stats["ramp_ticks"] - ramp_ticks):]
    assert np.abs(np.diff(after, axis=0)).max() <= 0.5 * PERIOD + 1e-9
    assert_all_safe(driver.commands)


def test_shadow_mode_never_publishes_on_the_controller_topic(driver, domain_id):
    driver.stream(True)
    with Running(make_runner(domain_id, shadow=True)) as runner:
        assert wait_until(lambda: len(driver.shadow_commands) > 30, 5.0)
        controller_publishers = driver.ros.node.count_publishers(ARRAY_COMMAND)
        stats = runner.stats()
    assert driver.commands == [] and controller_publishers == 0
    shadow = stats["shadow"]
    assert shadow["samples"] > 25 and shadow["joints"] == ["shoulder", "elbow"]
    # the robot stays at (0.3, -0.2) while shadow commands head for the goal (1, -1) at the rate limit
    assert shadow["abs_error_max_rad"] == pytest.approx([0.7, 0.8], abs=1e-6)
    assert stats["transport"]["command_topic"] == SHADOW_COMMAND


def test_deploy_cli_exits_with_the_estop_code_and_records_its_diagnostics(driver, domain_id, tmp_path, capsys):
    """`robotune deploy transport=ros2` end to end against the driver: e-stop -> exit code 3, summary with diagnostics."""
    from robotune.deploy.cli import EXIT_CODES, deploy
    from robotune.training.loop import train
    from tests.helpers import compose_config, tiny_train_overrides

    train(compose_config("train", tiny_train_overrides(tmp_path, policy="gaussian", steps=10)))
    driver.position.update(shoulder=0.3, elbow=0.5)  # inside reach_around's limits (elbow in [0.05, 2.9])
    driver.goal = [0.5, 0.5]  # metres, in reach
    driver.stream(True)
    cfg = compose_config("deploy", [f"checkpoint={tmp_path / 'run'}", "transport=ros2", f"ros.domain_id={domain_id}",
                                    "ros.episode=null", "duration_s=3", "episodes=0", "rate_hz=50", "status_line=false"])
    press = threading.Thread(target=lambda: wait_until(lambda: len(driver.commands) > 10, 30.0)
                             and driver.pub_estop.publish(Bool(data=True)), daemon=True)
    press.start()
    with pytest.raises(SystemExit) as exit_info:
        deploy(cfg)
    press.join(timeout=1.0)
    assert exit_info.value.code == EXIT_CODES["estop"] == 3
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["outcome"] == "estop" and summary["runner"]["estop_ticks"] > 0
    assert summary["runner"]["transport"]["commands_sent"] > 10 and summary["first_command_s"] > 0
    assert len(driver.commands) > 10


class FirstStateLost(Ros2Transport):
    """Drops the first JointState it receives, as a best-effort subscription may."""

    def _on_joint_state(self, msg, received_at: float) -> None:
        if not getattr(self, "dropped", False):
            self.dropped = True
            return
        super()._on_joint_state(msg, received_at)


def run_simulator_driver_episodes(domain_id, mode: str, episodes: int, rate_hz: float, command_type: str = "array",
                           transport_class: type[Ros2Transport] = Ros2Transport) -> tuple[dict, dict]:
    """The ROS 2 MuJoCo simulator in its own process, driven by reach_around's expert through the runner."""
    import json
    import subprocess
    import sys

    from robotune.deploy.cli import default_observation_topics
    from robotune.robots.reach_around.task import ReachAroundTask
    from tests.deploy.fakes import ExpertPolicy

    spec = ReachAroundTask().spec
    argv = [sys.executable, "-m", "robotune.deploy.ros.simulator_driver", "--task", "reach_around", "--episodes", str(episodes),
            "--mode", mode, "--domain-id", str(domain_id), "--startup-s", "0.2", "--max-wall-s", "60", "--seed", "100000"]
    sim = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=netns.REPO)
    topics = default_observation_topics(spec, spec.robot)
    transport = transport_class(spec.robot.joint_names, rate_hz,
                              RosTopics(command_type=command_type, episode="/episode", observation_topics=topics), domain_id=domain_id)
    config = RunnerConfig(rate_hz=rate_hz, lead_ticks=1, blend_steps=0, configure_timeout_s=30.0,
                          safety=SafetyConfig(warmup_ticks=0, obs_timeout_s=3.0 / rate_hz))
    runner = PolicyRunner(ExpertPolicy(), spec, transport, config, observation_topics=topics)
    try:
        with Running(runner):
            assert wait_until(lambda: transport.finished.is_set() or sim.poll() is not None, 60.0)
            stats = runner.stats()
        out, err = sim.communicate(timeout=10)
    finally:
        if sim.poll() is None:
            sim.terminate()
            sim.wait(timeout=5)
    assert sim.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), stats


def test_simulator_driver_lockstep_episodes_over_ros2(domain_id):
    summary, stats = run_simulator_driver_episodes(domain_id, "lockstep", episodes=3, rate_hz=100.0)
    assert summary["episodes"] == 3 and summary["success_rate"] == 1.0, summary
    assert summary["commands_outside_limits"] == 0 and summary["invalid_commands"] == 0
    assert stats["latched"] is None


def test_simulator_driver_realtime_with_trajectory_commands(domain_id):
    summary, stats = run_simulator_driver_episodes(domain_id, "realtime", episodes=1, rate_hz=20.0, command_type="trajectory")
    assert summary["episodes"] == 1 and summary["success_rate"] == 1.0, summary
    assert summary["commands_outside_limits"] == 0 and summary["malformed_commands"] == 0


def test_simulator_driver_lockstep_recovers_from_a_lost_state(domain_id):
    # Lockstep advances only on a command for the latest state; if that state is lost (best-effort
    # /joint_states, or published before discovery matched) both sides used to wait forever.
    summary, stats = run_simulator_driver_episodes(domain_id, "lockstep", episodes=1, rate_hz=100.0, transport_class=FirstStateLost)
    assert summary["states_resent"] >= 1, summary
    assert summary["episodes"] == 1 and summary["success_rate"] == 1.0, summary
    assert stats["latched"] is None
