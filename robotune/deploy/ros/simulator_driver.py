"""A MuJoCo task simulator that speaks ROS 2 like a robot driver (ros2_control conventions).

    python -m robotune.deploy.ros.simulator_driver --task reach_around --episodes 20 --mode lockstep

Publishes
  /joint_states                     sensor_msgs/JointState, in a deliberately scrambled joint order
                                    (reversed, with an unactuated "sim_camera_pan" joint in between)
                                    so that a consumer mapping by index fails
  /<key>                            std_msgs/Float64MultiArray for every non-joint observation source,
                                    e.g. /goal = [x, y], once per control step and at each reset
  /clock                            rosgraph_msgs/Clock, simulated time, once per control step
  /episode                          std_msgs/String JSON: {"event": "start"|"end"|"finished", ...}
Subscribes
  /forward_position_controller/commands          std_msgs/Float64MultiArray, robot joint order
  /joint_trajectory_controller/joint_trajectory  trajectory_msgs/JointTrajectory, mapped by joint
                                                 name; the last point becomes the actuator target
                                                 at once (no interpolation)
  /gripper_controller/commands                   std_msgs/Float64MultiArray with one value, for a task
                                                 whose robot has a gripper (`--gripper-topic`): the
                                                 task's gripper action (robosuite: -1 opens, 1 closes)

The gripper, like a real one, keeps its last command: a physics step applies the newest valid
gripper command, and one of the wrong length or non-finite is ignored (counted, logged on stderr)
so the fingers hold what they hold. A step whose arm command answers a newer state than the last
gripper command did is counted as `gripper_commands_stale` (in lockstep the driver first waits up
to `--gripper-wait-s` for the matching one; the runner publishes it just before the arm's). Each
episode starts from the gripper's idle command (the middle of its range: robosuite's fingers stay).

Timing, honestly:
- `--mode realtime` (default): physics advances one control step of the task (env.step with the
  latest command, zero-order hold) every control period of wall time; /joint_states is published
  at `--joint-state-rate` Hz, repeating the latest physics state with a fresh stamp between
  steps. Like a real robot, the world does not wait for the policy.
- `--mode lockstep`: physics advances one control step for each command computed from the latest
  published state (matched by the echoed observation stamp, see ros/transport.py) and publishes
  the next state at once. Simulated time then runs at the runner's rate, faster than real time
  when the runner ticks faster than the task's control rate. This is what parity checks use.

Each JointState's header.stamp is wall-clock time (taken before the message is built), unique per
message, so the runner's echoed stamp measures observation-to-command latency here: from that
stamp to the command's reception by this process's DDS layer (rmw's `received_timestamp`, the
same clock), which is when a ros2_control driver could use it. Timing the Python callback instead
would add this process's own executor delay (its main thread holds the GIL through each physics
step) to the runner's latency. Commands that answer a state of an episode that has already ended
are counted apart (`commands_after_episode_end`), not as latency samples: between episodes this
simulator stops publishing (`--reset-gap-s`), so the runner's last read of the old episode's
final state is as old as that silence, which no real robot imposes. A JSON summary (episodes,
success rate, unsafe commands seen, latency percentiles) is printed as the last stdout line and
optionally written to `--summary`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import queue
import sys
import time
from pathlib import Path

import numpy as np

from robotune.deploy.safety import gripper_idle

EXTRA_JOINT = "sim_camera_pan"
LOCKSTEP_POLL_S = 0.0002  # lockstep: sleep between polls for the command that advances physics
READY_LINE = "simulator_driver: publishing"  # on stderr when the first episode starts; scripts wait for it
MALFORMED_GRIPPER_LOG_LINES = 10  # bad gripper commands logged one line each; the rest are only counted


def task_from_args(task_name: str | None, checkpoint: str | None):
    """The task of a checkpoint (with its config), or a registered task by name with its defaults."""
    from robotune.core.task import build_task

    if checkpoint:
        from robotune.core.checkpoint import load_checkpoint

        return build_task(load_checkpoint(checkpoint).config.task)
    return build_task({"name": task_name})


class StampLedger:
    """The stamps of published joint states, matched against the stamps that commands echo.

    Each published state's first answer is one observation-to-command latency sample. Answers to
    a state of an episode that has already ended are counted apart (see the module docstring).
    """

    MAX_OPEN = 20_000  # unanswered stamps kept (a runner slower than the publishing rate leaves many)

    def __init__(self) -> None:
        self.open: dict[int, bool] = {}  # this episode's unanswered stamps, oldest first
        self.ended: dict[int, bool] = {}  # the last ended episode's unanswered stamps
        self.latencies_ms: list[float] = []
        self.answers_after_episode_end = 0

    def published(self, stamp: int) -> None:
        self.open[stamp] = True
        if len(self.open) > self.MAX_OPEN:
            for old in list(self.open)[: self.MAX_OPEN // 2]:
                del self.open[old]

    def answered(self, stamp: int | None, received_ns: int) -> None:
        """A command echoing `stamp` was received at `received_ns` (both system clock, ns)."""
        if stamp is None:
            return
        if self.open.pop(stamp, None) is not None:
            if len(self.latencies_ms) < 1_000_000:
                self.latencies_ms.append((received_ns - stamp) / 1e6)
        elif self.ended.pop(stamp, None) is not None:
            self.answers_after_episode_end += 1

    def end_episode(self) -> None:
        self.ended, self.open = self.open, {}


class SimulatorDriverNode:
    """Owns a TaskEnvRobot and its ROS 2 interfaces; `run()` plays all episodes, bounded in wall time."""

    def __init__(self, sim, args: argparse.Namespace) -> None:
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray, String
        from trajectory_msgs.msg import JointTrajectory

        from robotune.deploy.ros.node import COMMAND_QOS, EVENT_QOS, lean_node

        self._msg = {"Time": Time, "Clock": Clock, "JointState": JointState, "Array": Float64MultiArray, "String": String}
        self.sim = sim
        self.args = args
        self.joint_names = sim.robot.joint_names
        self.gripper = sim.robot.gripper
        order = list(reversed(self.joint_names))
        self.published_order = order[:1] + [EXTRA_JOINT] + order[1:]
        # No executor: the main loop takes commands itself (`_take_commands`), as the runner does
        # (ros/transport.py). An executor thread here held the GIL ~0.8 ms per command and delayed
        # this loop's 1 kHz /joint_states, which aged the states the runner computed from.
        self.context, self.node = lean_node("robotune_simulator_driver", args.domain_id)
        node = self.node
        self.pub_joints = node.create_publisher(JointState, "/joint_states", COMMAND_QOS)
        self.pub_arrays = {key: node.create_publisher(Float64MultiArray, f"/{key}", COMMAND_QOS) for key in sim.arrays()}
        self.pub_clock = node.create_publisher(Clock, "/clock", 10)
        self.pub_episode = node.create_publisher(String, "/episode", EVENT_QOS)
        self._command_subs = [  # (subscription, message type, handler(msg, received_ns)); callbacks never run
            (node.create_subscription(Float64MultiArray, "/forward_position_controller/commands", lambda m: None, COMMAND_QOS),
             Float64MultiArray, self._on_array),
            (node.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", lambda m: None,
                                      COMMAND_QOS), JointTrajectory, self._on_trajectory),
        ]
        if self.gripper is not None:  # first, so that a take sees the gripper command the runner sent before the arm's
            self._command_subs.insert(0, (node.create_subscription(Float64MultiArray, args.gripper_topic, lambda m: None,
                                                                   COMMAND_QOS), Float64MultiArray, self._on_gripper))
        self.gripper_command = gripper_idle(self.gripper) if self.gripper is not None else 0.0  # held until replaced
        self.gripper_source: int | None = None  # the observation stamp the held gripper command echoed
        self.gripper_commands_received = 0
        self.malformed_gripper_commands = 0
        self.gripper_commands_stale = 0  # steps that held the gripper because its command for the state was missing
        self.commands: queue.Queue = queue.Queue(maxsize=1000)
        self.latest_command: np.ndarray | None = None
        self.latest_source: int | None = None  # the observation stamp latest_command echoed
        self.malformed_commands = 0
        self.commands_received = 0
        self.commands_ignored = 0  # lockstep: computed from an older state than the latest one
        self.stamps = StampLedger()
        self.publish_gaps_ms: list[float] = []  # between consecutive /joint_states: a late state ages every command
        self._last_publish: float | None = None
        self._last_stamp = 0
        self.sim_time_s = 0.0
        self.peer_wait_s = 0.0
        self.states_resent = 0  # lockstep: states published again because no command answered them

    # -- commands (taken by the main loop) ---------------------------------------------------
    def _take_commands(self, max_takes: int = 100) -> None:
        from robotune.deploy.ros.node import take_waiting

        for sub, msg_type, handler in self._command_subs:
            for msg, received_ns in take_waiting(sub, msg_type, max_takes):
                handler(msg, received_ns)

    def _on_array(self, msg, received_ns: int) -> None:
        from robotune.deploy.ros.transport import command_source_stamp

        self._accept(np.asarray(msg.data, dtype=np.float64), command_source_stamp(msg), received_ns)

    def _on_trajectory(self, msg, received_ns: int) -> None:
        from robotune.deploy.ros.transport import command_source_stamp

        if not msg.points or len(msg.points[-1].positions) != len(msg.joint_names):
            self.malformed_commands += 1
            return
        by_name = dict(zip(msg.joint_names, msg.points[-1].positions))
        if any(n not in by_name for n in self.joint_names):
            self.malformed_commands += 1
            return
        self._accept(np.array([by_name[n] for n in self.joint_names]), command_source_stamp(msg), received_ns)

    def _on_gripper(self, msg, received_ns: int) -> None:
        from robotune.deploy.ros.transport import command_source_stamp

        values = np.asarray(msg.data, dtype=np.float64)
        if values.shape != (1,) or not np.isfinite(values[0]):
            self.malformed_gripper_commands += 1
            if self.malformed_gripper_commands <= MALFORMED_GRIPPER_LOG_LINES:
                last = self.malformed_gripper_commands == MALFORMED_GRIPPER_LOG_LINES
                print(f"simulator_driver: ignored gripper command on {self.args.gripper_topic}: expected 1 finite "
                      f"value, got {values.tolist()[:8]}; gripper '{self.gripper.name}' holds {self.gripper_command:g}"
                      + (" (further ones are only counted)" if last else ""), file=sys.stderr, flush=True)
            return
        self.gripper_commands_received += 1
        self.gripper_command = float(values[0])
        self.gripper_source = command_source_stamp(msg)

    def _accept(self, command: np.ndarray, source_stamp: int | None, received_ns: int) -> None:
        """received_ns: DDS reception time (system clock, ns), from `take_waiting`."""
        self.commands_received += 1
        self.stamps.answered(source_stamp, received_ns)
        if command.shape != (len(self.joint_names),):
            self.malformed_commands += 1  # still handed to the sim, which counts and ignores it
        self.latest_command, self.latest_source = command, source_stamp
        try:
            self.commands.put_nowait((command, source_stamp))
        except queue.Full:
            pass

    # -- publishing --------------------------------------------------------------------------
    def _stamp(self) -> int:
        stamp = max(time.time_ns(), self._last_stamp + 1)
        self._last_stamp = stamp
        return stamp

    def publish_state(self) -> int:
        msg_types = self._msg
        stamp = self._stamp()
        position = dict(zip(self.joint_names, self.sim.joint_positions()))
        velocity = dict(zip(self.joint_names, self.sim.joint_velocities()))
        msg = msg_types["JointState"]()
        msg.header.stamp = msg_types["Time"](sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
        msg.name = list(self.published_order)
        msg.position = [float(position.get(n, 0.0)) for n in self.published_order]
        msg.velocity = [float(velocity.get(n, 0.0)) for n in self.published_order]
        self.stamps.published(stamp)
        self.pub_joints.publish(msg)
        now = time.perf_counter()
        if self._last_publish is not None and len(self.publish_gaps_ms) < 1_000_000:
            self.publish_gaps_ms.append((now - self._last_publish) * 1e3)
        self._last_publish = now
        return stamp

    def publish_world(self) -> None:
        """The non-joint signals (goal) and /clock: once per physics control step, not per JointState."""
        msg_types = self._msg
        for key, values in self.sim.arrays().items():
            self.pub_arrays[key].publish(msg_types["Array"](data=[float(v) for v in values]))
        sim_ns = int(self.sim_time_s * 1e9)
        clock = msg_types["Clock"]()
        clock.clock = msg_types["Time"](sec=sim_ns // 1_000_000_000, nanosec=sim_ns % 1_000_000_000)
        self.pub_clock.publish(clock)

    def publish_event(self, **event) -> None:
        self.pub_episode.publish(self._msg["String"](data=json.dumps(event)))

    # -- episodes ----------------------------------------------------------------------------
    def start_episode(self) -> int:
        self.sim.reset()
        if self.gripper is not None:
            self.gripper_command, self.gripper_source = gripper_idle(self.gripper), None
        self.publish_event(event="start", episode=self.sim.episode, seed=self.sim.base_seed + self.sim.episode)
        time.sleep(self.args.reset_gap_s)  # let the runner see the event before the new state
        self.publish_world()
        return self.publish_state()

    def end_episode(self) -> None:
        self.stamps.end_episode()
        r = self.sim.results[-1]
        self.publish_event(event="end", episode=r.episode, seed=r.seed, success=r.success, steps=r.steps)

    def wait_for_peers(self, deadline: float) -> float:
        """Wait until a consumer has matched /joint_states and someone publishes commands.

        A fixed sleep is not enough: on a loaded 2-core machine Fast DDS took about 10 s to match a
        runner that was already up, and in lockstep a first state published before the match is lost
        for good (volatile), leaving both sides waiting for each other. Returns the seconds waited.
        """
        start = time.monotonic()
        node = self.node
        bound = min(deadline, start + self.args.peer_timeout_s)
        while time.monotonic() < bound:
            commands = node.count_publishers("/forward_position_controller/commands") + node.count_publishers(
                "/joint_trajectory_controller/joint_trajectory")
            if self.pub_joints.get_subscription_count() and commands:
                time.sleep(self.args.startup_s)  # let the other endpoints (/goal, /episode) match too
                return time.monotonic() - start
            time.sleep(0.05)
        print(f"simulator_driver: no runner matched /joint_states and a command topic within "
              f"{self.args.peer_timeout_s:.0f} s; starting anyway", file=sys.stderr, flush=True)
        return time.monotonic() - start

    def run(self) -> dict:
        deadline = time.monotonic() + self.args.max_wall_s
        self.peer_wait_s = self.wait_for_peers(deadline)
        print(f"{READY_LINE} ({self.args.mode})", file=sys.stderr, flush=True)
        if self.args.duration_s is not None:  # measured time starts once the runner is connected
            deadline = min(deadline, time.monotonic() + self.args.duration_s)
        stamp = self.start_episode()
        if self.args.mode == "lockstep":
            self._run_lockstep(stamp, deadline)
        else:
            self._run_realtime(deadline)
        self.publish_event(event="finished", **{k: v for k, v in self.sim.summary().items() if k != "results"})
        time.sleep(0.2)  # let the last events out before the context goes down
        return self.summary()

    def _step(self, command: np.ndarray | None, source: int | None = None) -> bool:
        """One control step with the arm's `command` (None: hold the target), and the gripper's held command."""
        if command is None:
            command = self.sim.target
        elif self.gripper is not None:
            if source != self.gripper_source:
                self.gripper_commands_stale += 1
            command = np.append(command, self.gripper_command)
        done = self.sim.step(command)
        self.sim_time_s += 1.0 / self.sim.task.control_rate_hz
        self.publish_world()
        if done:
            self.end_episode()
        return done

    def _run_lockstep(self, stamp: int, deadline: float) -> None:
        waiting_since = time.monotonic()
        while not self.sim.finished and time.monotonic() < deadline:
            self._take_commands()
            try:
                command, source = self.commands.get_nowait()
            except queue.Empty:
                if time.monotonic() - waiting_since > self.args.resend_s:
                    # The state (or the command for it) was lost: the runner reads /joint_states best
                    # effort. Publish the same physical state again, with a fresh stamp.
                    self.states_resent += 1
                    self.publish_world()
                    stamp = self.publish_state()
                    waiting_since = time.monotonic()
                time.sleep(LOCKSTEP_POLL_S)
                continue
            if source != stamp:
                self.commands_ignored += 1
                continue
            self._wait_for_gripper(source)
            if self._step(command, source) and not self.sim.finished:
                stamp = self.start_episode()
            else:
                stamp = self.publish_state()
            waiting_since = time.monotonic()

    def _wait_for_gripper(self, source: int | None) -> None:
        """Lockstep: take commands until the gripper's for this state is in, for at most --gripper-wait-s."""
        end = time.monotonic() + self.args.gripper_wait_s
        while self.gripper is not None and source != self.gripper_source and time.monotonic() < end:
            time.sleep(LOCKSTEP_POLL_S)
            self._take_commands()

    def _run_realtime(self, deadline: float) -> None:
        if self.args.realtime_priority:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.args.realtime_priority))
        publish_period = 1.0 / self.args.joint_state_rate
        control_period = 1.0 / self.sim.task.control_rate_hz
        t0 = time.perf_counter()
        next_step = t0 + control_period
        k = 0
        while not self.sim.finished and time.monotonic() < deadline:
            k += 1
            target = t0 + k * publish_period
            remaining = target - time.perf_counter()
            if remaining > 0:
                time.sleep(remaining)
            self._take_commands()
            if time.perf_counter() >= next_step:
                next_step += control_period
                if self._step(self.latest_command, self.latest_source) and not self.sim.finished:
                    self.latest_command = None
                    self.start_episode()
                    t0, k = time.perf_counter(), 0
                    next_step = t0 + control_period
                    continue
            self.publish_state()

    def summary(self) -> dict:
        lat = np.asarray(self.stamps.latencies_ms) if self.stamps.latencies_ms else np.full(1, np.nan)
        gaps = np.asarray(self.publish_gaps_ms) if self.publish_gaps_ms else np.full(1, np.nan)
        return {
            **self.sim.summary(),
            "mode": self.args.mode,
            "commands_received": self.commands_received,
            "commands_ignored": self.commands_ignored,
            "states_resent": self.states_resent,
            "peer_wait_s": round(self.peer_wait_s, 2),
            "malformed_commands": self.malformed_commands,
            **({"gripper_commands_received": self.gripper_commands_received,
                "malformed_gripper_commands": self.malformed_gripper_commands,
                "gripper_commands_stale": self.gripper_commands_stale} if self.gripper is not None else {}),
            "latency_samples": len(self.stamps.latencies_ms),
            "commands_after_episode_end": self.stamps.answers_after_episode_end,
            "obs_to_cmd_p50_ms": float(np.percentile(lat, 50)),
            "obs_to_cmd_p99_ms": float(np.percentile(lat, 99)),
            "joint_state_gap_p50_ms": float(np.percentile(gaps, 50)),
            "joint_state_gap_p99_ms": float(np.percentile(gaps, 99)),
            "joint_state_gap_max_ms": float(gaps.max()),
        }

    def close(self) -> None:
        try:
            self.node.destroy_node()
        except Exception:  # the context is already gone
            pass
        self.context.try_shutdown()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m robotune.deploy.ros.simulator_driver", description=__doc__.split("\n")[0])
    p.add_argument("--task", help="registered task name, e.g. reach_around")
    p.add_argument("--checkpoint", help="take the task (and its config) from this checkpoint directory")
    p.add_argument("--import", dest="imports", action="append", default=[], help="import a module first (registers out-of-tree tasks)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1000, help="episode i uses seed + i")
    p.add_argument("--mode", choices=("realtime", "lockstep"), default="realtime")
    p.add_argument("--joint-state-rate", type=float, default=100.0, help="realtime mode: /joint_states rate (Hz)")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    p.add_argument("--max-wall-s", type=float, default=600.0, help="hard bound on the run's wall time")
    p.add_argument("--duration-s", type=float, default=None,
                   help="stop this long after the runner matched (within --max-wall-s)")
    p.add_argument("--peer-timeout-s", type=float, default=60.0,
                   help="wait at most this long for a runner to match before the first episode")
    p.add_argument("--startup-s", type=float, default=0.5, help="settle time after the runner has matched")
    p.add_argument("--resend-s", type=float, default=0.5,
                   help="lockstep: publish the state again if no command for it arrived within this time")
    p.add_argument("--gripper-topic", default="/gripper_controller/commands",
                   help="a robot with a gripper: its command topic (std_msgs/Float64MultiArray, one value)")
    p.add_argument("--gripper-wait-s", type=float, default=0.05,
                   help="lockstep: wait this long for the gripper command of a state before holding the last one")
    p.add_argument("--reset-gap-s", type=float, default=0.05, help="pause between an episode event and the new state")
    p.add_argument("--realtime-priority", type=int, default=None, help="realtime mode: SCHED_FIFO priority of the physics loop (root)")
    p.add_argument("--summary", type=Path, help="also write the JSON summary here")
    args = p.parse_args(argv)
    if not (args.task or args.checkpoint):
        p.error("give --task NAME or --checkpoint DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    from rclpy.executors import ExternalShutdownException

    from robotune.deploy.task_env_robot import TaskEnvRobot

    args = parse_args(argv)
    for module in args.imports:
        importlib.import_module(module)
    task = task_from_args(args.task, args.checkpoint)
    spec = task.spec
    if spec.robot is None:
        print(f"task '{spec.name}' has no RobotSpec; cannot simulate a robot for it", file=sys.stderr)
        return 2
    sim = TaskEnvRobot(task.make_env(), spec, spec.robot, seed=args.seed, episodes=args.episodes)
    node = SimulatorDriverNode(sim, args)
    try:
        summary = node.run()
    except (KeyboardInterrupt, ExternalShutdownException):
        summary = node.summary()
    finally:
        node.close()
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
