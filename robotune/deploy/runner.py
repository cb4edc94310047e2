"""The policy runner: observations to policy to safety layer to commands, at a fixed rate.

Lifecycle, as in a ROS 2 managed node (the runner is transport-agnostic, so it is a plain state
machine rather than an rclpy lifecycle node):

    UNCONFIGURED --configure()--> INACTIVE --activate()--> ACTIVE
                  ACTIVE --deactivate()--> INACTIVE --shutdown()--> FINALIZED

`configure` starts the transport and waits for one complete observation, so a wrong joint name
or topic fails here with a message that names it, before anything moves, and warms the policy up.
`activate` checks that the command topic has a subscriber, that every measured joint lies inside
its limits and warns when the start state is outside the checkpoint's training range; then it
anchors the safety layer at the measured position (the first command is reached through a ramp)
and starts the control thread. Each tick reads the latest signals, assembles the observation in
`TaskSpec.obs_names` order, passes it through the checkpoint's observation processors (as training
did), takes the planned action for this tick and sends what the safety layer allows, mapped by joint
name from the trained order to the controller's (`command_joints`).

Operator-visible state: every lifecycle change, hold (with its reason and source), latch, e-stop,
reset and recovery is a log line on the `robotune.deploy` logger. After an e-stop or fault the
runner holds the last safe target or goes silent (`safety.after_latch`); an operator reset request
from the transport re-arms it through the ramp. `mode=shadow` (RunnerConfig.shadow) runs the same
pipeline and reports how far its would-be commands are from the measured motion.

Timing: the control thread sleeps to 0.3 ms before each deadline on `time.perf_counter` (a
monotonic clock) and busy-waits the rest, because `time.sleep` alone overshoots by 0.1-1 ms under
load. Deadlines are absolute (t0 + k * period), so errors do not accumulate; a tick that overruns
by more than a period skips the missed deadlines instead of bursting to catch up.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

from robotune.core.policy import Policy
from robotune.core.spec import RobotSpec, TaskSpec
from robotune.deploy import DeployError
from robotune.deploy.cpu_latency import CpuLatencyRequest
from robotune.deploy.observation import ArrayTopic, ObservationError, ObservationLayout, ObservationSnapshot
from robotune.deploy.planner import ChunkPlanner
from robotune.deploy.safety import HOLDS, SafetyConfig, SafetyLayer, Verdict
from robotune.deploy.transport import Transport
from robotune.processing.normalizers import observation_kinds
from robotune.processing.pipeline import ObservationProcessors

log = logging.getLogger("robotune.deploy")
LIMIT_TOLERANCE = 1e-9  # rad: a start pose exactly on a limit is inside


class RunnerState(str, Enum):
    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    FINALIZED = "finalized"


@dataclass
class RunnerConfig:
    rate_hz: float
    lead_ticks: int = 1  # control periods inference may take (see planner.py); 0 = plan synchronously
    blend_steps: int = 2  # actions blended into the previous chunk at each boundary
    deterministic: bool = True
    seed: int = 0
    configure_timeout_s: float = 5.0  # how long configure() waits for a complete first observation
    spin_s: float = 0.0003  # busy-wait this long before each deadline instead of sleeping
    # While waiting for a deadline, take what has arrived (Transport.prefetch) every prefetch_every_s
    # until prefetch_lead_s before it, so the tick parses only the last messages: with 1 kHz joint
    # states, parsing a whole period's worth in the tick took its read-to-send p50 from 0.75-0.93 ms
    # to ~1.5 ms at 100 Hz (interleaved, 2 runs each), and a single prefetch of a period's worth just
    # before the deadline (~1 ms of parsing on this machine) can push the tick's start past it.
    # Skipped when the period is shorter than twice the lead (above 1 kHz).
    prefetch_lead_s: float = 0.0005
    prefetch_every_s: float = 0.002
    max_timing_records: int = 200_000  # bound on the tick-time log (about 7 min at 500 Hz)
    # Python hands the GIL between threads every 5 ms by default, so a control thread waking while
    # the middleware thread runs Python could start its tick up to 5 ms late. 0.5 ms bounds that.
    # Process-wide; None leaves it alone.
    gil_switch_interval_s: float | None = 0.0005
    # SCHED_FIFO priority (1-99) for the control thread, as ros2_control does for its update loop;
    # None keeps the default scheduler. Needs root or CAP_SYS_NICE; without it the runner logs and
    # goes on at normal priority.
    realtime_priority: int | None = None
    # While the control thread runs, keep every CPU able to wake from idle within this many µs (a
    # PM QoS request on /dev/cpu_dma_latency, see cpu_latency.py; 0: idle CPUs poll instead of
    # sleeping). On the 2-core VM this took the bare loop's 100 Hz jitter p99 from 1.7-4.7 ms to
    # 0.09-0.36 ms. None leaves idle states alone. Needs root; without it the runner logs and goes on.
    cpu_latency_us: int | None = None
    # Compute plans in the control thread right after each tick's command is sent, instead of in a
    # planner thread: no second Python thread then competes with the tick for the GIL, and the
    # plan still adds nothing to the tick's latency. On the shared 2-core machine an interleaved
    # A/B (deploy_latency.py --plan-on-tick on|off, 100 Hz, 3 runs each) was within its noise.
    # None: do so when the slowest warm-up plan took at most half a control period.
    plan_on_tick: bool | None = None
    # activate() waits this long for a subscriber on the command topic, and refuses without one.
    subscriber_timeout_s: float = 2.0
    # Warn at activation when a start observation entry lies further outside the checkpoint's
    # training range than this, in the normaliser's units (min_max maps the training range to
    # [-1, 1]; for an entry normalised by z_score, the unit is one standard deviation).
    ood_warn_norm: float = 1.5
    shadow: bool = False  # shadow mode: compare would-be commands with the measured motion (see module docstring)
    hold_log_interval_s: float = 1.0  # at most one log line per hold reason in this interval (the rest are counted)
    safety: SafetyConfig = field(default_factory=SafetyConfig)


def in_joint_order(robot: RobotSpec, names: tuple[str, ...]) -> RobotSpec:
    """The same robot with `joints` listed in the order of `names` (the command order is kept)."""
    by_name = {j.name: j for j in robot.joints}
    return replace(robot, joints=tuple(by_name[n] for n in names), command_joints=robot.command_order)


def wait_until(deadline: float, spin_s: float) -> float:
    """Sleep to `spin_s` before `deadline` (time.perf_counter) and busy-wait the rest; returns the wake time."""
    remaining = deadline - time.perf_counter()
    if remaining > spin_s:
        time.sleep(remaining - spin_s)
    while (now := time.perf_counter()) < deadline:
        pass
    return now


def period_jitter_ms(starts, period_s: float) -> np.ndarray:
    """|actual period - nominal| between consecutive tick start times (seconds), in ms."""
    return np.abs(np.diff(np.asarray(starts)) - period_s) * 1e3


class PolicyRunner:
    """Runs a chunk policy on a robot behind a `Transport`, through a `SafetyLayer`."""

    def __init__(
        self,
        policy: Policy,
        task: TaskSpec,
        transport: Transport,
        config: RunnerConfig,
        robot: RobotSpec | None = None,
        observation_topics: dict[str, ArrayTopic] | None = None,
        processors: ObservationProcessors | None = None,
    ) -> None:
        """`task` is the task's own spec (the signals the robot provides); `processors` turn its
        observation into the policy's (None: the policy observes it as it is)."""
        robot = robot or task.robot
        if robot is None:
            raise DeployError(f"task '{task.name}' has no RobotSpec; pass robot=... to PolicyRunner")
        trained_order = task.robot.joint_names if task.robot is not None else robot.joint_names
        if robot.gripper is not None and robot.gripper.name in robot.joint_names:
            raise DeployError(f"robot '{robot.name}': its gripper '{robot.gripper.name}' has the name of one of its joints")
        # what the action commands, in action order: the joints as trained, then the robot's gripper if it has one
        trained_channels = trained_order + ((robot.gripper.name,) if robot.gripper else ())
        if task.action_dim != len(trained_channels) or set(robot.joint_names) != set(trained_order):
            raise DeployError(
                f"task '{task.name}' has {task.action_dim} actions for {list(trained_channels)} but robot "
                f"'{robot.name}' has joints {list(robot.joint_names)}"
                + (f" and gripper '{robot.gripper.name}'" if robot.gripper else " and no gripper")
            )
        if set(transport.command_joints) != set(trained_channels):
            raise DeployError(f"the transport commands {list(transport.command_joints)}, not the robot's "
                              f"{list(trained_channels)}")
        if config.cpu_latency_us is not None and config.cpu_latency_us < 0:
            raise DeployError(f"RunnerConfig.cpu_latency_us must be >= 0 µs or None, got {config.cpu_latency_us}")
        self.policy = policy.export_for_inference()  # frozen weights on the fast sampler where the policy has one
        self.task = task
        self.processors = processors or ObservationProcessors.identity(task.obs_names)
        self.processors.check_task(task)
        self.robot = in_joint_order(robot, trained_order)  # actions, limits and the safety layer in trained order
        # command[k] is the trained-order entry for the controller's k-th joint: mapped by name, never by index
        self.command_index = np.array([trained_channels.index(n) for n in transport.command_joints])
        self.transport = transport
        self.config = config
        self.layout = ObservationLayout(task, self.robot, observation_topics or {})
        self.safety = SafetyLayer(self.robot, config.rate_hz, config.safety)
        self.planner: ChunkPlanner | None = None
        self.state = RunnerState.UNCONFIGURED
        self.period_s = 1.0 / config.rate_hz
        self.tick_index = 0
        self.episode: int | None = None
        self.last_error = ""
        self.observation_errors = 0
        self.episode_wait_ticks = 0  # held after an episode start event, waiting for the new episode's data
        self.overruns = 0
        self.tick_starts: list[float] = []
        self.tick_durations: list[float] = []
        self.sent_at = 0.0  # perf_counter when the last tick's command went out
        self.first_command_at: float | None = None  # perf_counter of the first command sent
        self.warmup_plan_s = 0.0
        self.verdict: Verdict | None = None  # the last tick's
        self.out_of_distribution: list[str] = []  # start observation entries outside the training range
        self.resets: list[dict] = []  # operator resets: tick, what was latched, outcome
        self.shadow_errors: list[np.ndarray] = []  # |would-be command - next measured position| per tick
        self._shadow_last: np.ndarray | None = None
        self._hold_logged: dict[str, tuple[float, int]] = {}  # reason kind -> (last log time, suppressed since)
        self._armed_at_tick = 0  # the tick of the last activation or operator reset
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def configure(self) -> None:
        """Warm the policy up, start the transport and wait for a complete observation.

        The warm-up comes first and uses the centre of the checkpoint's observation range: its cost
        (loading the compiled inference kernel, building the NumPy twin) does not depend on the
        observation, and a transport started earlier (see cli.py) keeps discovering meanwhile.
        """
        self._expect(RunnerState.UNCONFIGURED, "configure")
        self.planner = ChunkPlanner(
            self.policy,
            lead_ticks=self.config.lead_ticks,
            blend_steps=self.config.blend_steps,
            deterministic=self.config.deterministic,
            seed=self.config.seed,
        )
        self.warmup_plan_s = self.planner.warm_up(self.policy.obs_normalizer.center.numpy())
        on_tick = self.config.plan_on_tick
        if on_tick is None:
            on_tick = self.warmup_plan_s <= 0.5 * self.period_s
        self.planner.on_tick = on_tick
        log.info("policy warmed up: slowest warm-up plan %.1f ms, planning %s", self.warmup_plan_s * 1e3,
                 "on the tick" if on_tick else "in a thread")
        self.transport.start()
        log.info("waiting for a complete observation (%.1f s at most)", self.config.configure_timeout_s)
        deadline = time.monotonic() + self.config.configure_timeout_s
        while True:
            try:
                obs, _ = self.layout.assemble(self.transport.snapshot())
                break
            except ObservationError as exc:
                if time.monotonic() > deadline:
                    self.transport.close()
                    rejected = self.transport.rejection_summary()
                    raise DeployError(
                        f"no usable observation within {self.config.configure_timeout_s:.1f} s: {exc}"
                        + (f"; last message rejected: {rejected}" if rejected else "")
                        + self._other_joints_seen()
                    ) from exc
                time.sleep(0.005)
        if not np.all(np.isfinite(obs)):
            self.transport.close()
            raise DeployError(f"the first observation has non-finite entries: {dict(zip(self.task.obs_names, obs.tolist()))}")
        self.state = RunnerState.INACTIVE
        log.info("configured: observation complete")

    def _other_joints_seen(self) -> str:
        cache = getattr(self.transport, "cache", None)
        names = getattr(cache, "last_seen_names", ())
        return f"; the last JointState on {cache.joint_topic} without this robot's joints named {list(names)}" if names else ""

    def activate(self, start_thread: bool = True) -> None:
        """Check the command topic and the start pose, anchor the safety layer and start ticking
        (in a thread unless the transport is stepped). Raises DeployError, naming what is wrong, instead."""
        self._expect(RunnerState.INACTIVE, "activate")
        if not self.config.shadow:
            self._wait_for_command_subscriber()
        snapshot = self.transport.snapshot()
        measured = self.layout.joint_positions(snapshot)
        outside = self._outside_limits(measured)
        if outside:
            raise DeployError(f"refusing to activate: {outside}; move the robot inside its limits first")
        self._warn_out_of_distribution(snapshot)
        self.safety.anchor(measured)
        self.episode = snapshot.episode
        self.planner.reset()
        self.state = RunnerState.ACTIVE
        log.info("active%s: %s at %.0f Hz, commands to %s in order %s, first command reached by a %s",
                 " (shadow mode: nothing goes to the controller)" if self.config.shadow else "", self.robot.name,
                 self.config.rate_hz, self.transport.command_topic or "the simulator", list(self.transport.command_joints),
                 f"ramp at {self.config.safety.ramp_speed} rad/s" if self.safety.ramping else "rate-limited step")
        if start_thread and not self.transport.stepped:
            if self.config.gil_switch_interval_s is not None:
                sys.setswitchinterval(self.config.gil_switch_interval_s)
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="policy-runner", daemon=True)
            self._thread.start()

    def _wait_for_command_subscriber(self) -> None:
        deadline = time.monotonic() + self.config.subscriber_timeout_s
        while (count := self.transport.command_subscribers()) is not None and count < 1:
            if time.monotonic() > deadline:
                self.transport.close()
                raise DeployError(
                    f"refusing to activate: nothing subscribes to the command topic {' or '.join(self.transport.command_topics)} "
                    f"(waited {self.config.subscriber_timeout_s:.1f} s); is the controller running, and is "
                    f"ros.command_type right?")
            time.sleep(0.01)

    def _outside_limits(self, measured: np.ndarray) -> str:
        """'' if every measured joint is inside its limits, else a message naming each one that is not."""
        bad = [f"joint '{j.name}' measures {q:.4f} rad, outside [{j.lower}, {j.upper}]"
               for j, q in zip(self.robot.joints, measured)
               if not (j.lower - LIMIT_TOLERANCE <= q <= j.upper + LIMIT_TOLERANCE)]
        return "; ".join(bad)

    def _warn_out_of_distribution(self, snapshot: ObservationSnapshot) -> None:
        """Log the start observation entries that lie far outside the checkpoint's training range."""
        obs = self.processors.apply(self.layout.assemble(snapshot)[0])
        normalizer = self.policy.obs_normalizer
        center, half_range = normalizer.center.numpy().astype(np.float64), normalizer.half_range.numpy().astype(np.float64)
        norm = (obs - center) / half_range
        names, normalizer = self.processors.obs_names, self.processors.normalizer
        z_scored = [kind == "z_score" for kind in observation_kinds(normalizer, names)] if normalizer else [False] * len(names)
        self.out_of_distribution = [
            f"{name}={value:.3f} (" + (f"{x:+.1f} std from the training mean {c:.3f}" if z else f"training range [{c - h:.3f}, {c + h:.3f}]") + ")"
            for name, value, x, c, h, z in zip(names, obs, norm, center, half_range, z_scored)
            if abs(x) > self.config.ood_warn_norm
        ]
        if self.out_of_distribution:
            log.warning("the start state is far outside the training distribution: %s", "; ".join(self.out_of_distribution))

    def deactivate(self) -> None:
        self._expect(RunnerState.ACTIVE, "deactivate")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.state = RunnerState.INACTIVE
        log.info("deactivated after %d ticks", self.tick_index)
        if self._fatal is not None:
            raise DeployError(f"the control loop stopped with an error: {self._fatal!r}") from self._fatal

    def shutdown(self) -> None:
        if self.state is RunnerState.ACTIVE:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5.0)
        if self.planner is not None:
            self.planner.close()
        self.transport.close()
        if self.state is not RunnerState.FINALIZED:
            log.info("shut down")
        self.state = RunnerState.FINALIZED

    def _expect(self, state: RunnerState, transition: str) -> None:
        if self.state is not state:
            raise DeployError(f"cannot {transition} a runner that is {self.state.value} (needs {state.value})")

    def run_for(self, seconds: float) -> None:
        """Block while the control thread runs (bounded), re-raising a loop failure."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self._thread is not None and self._thread.is_alive():
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        if self._fatal is not None:
            raise DeployError(f"the control loop stopped with an error: {self._fatal!r}") from self._fatal

    def run_stepped(self, max_ticks: int, until=lambda: False) -> None:
        """Tick as fast as possible (for a stepped transport), at most `max_ticks` times or until `until()`."""
        self._expect(RunnerState.ACTIVE, "run_stepped on")
        for _ in range(max_ticks):
            if until():
                return
            self.tick()

    # -- one control step --------------------------------------------------------------------
    def tick(self) -> tuple[np.ndarray, Verdict]:
        """Read, plan, check, send. Returns what was sent (or would have been) and why."""
        snapshot = self.transport.snapshot()
        if self.transport.estop_requested() and self.safety.latched is not Verdict.ESTOP:
            self.safety.trigger_estop(f"emergency stop received at tick {self.tick_index}")
        if self.transport.take_reset_request():
            self._operator_reset(snapshot)
        obs, age, measured = None, float("inf"), None
        waiting_for_episode = snapshot.episode != self.episode and not self._start_episode(snapshot)
        if waiting_for_episode:
            self.episode_wait_ticks += 1
        else:
            try:
                obs, age = self.layout.assemble(snapshot)
                measured = self.layout.joint_positions(snapshot)
            except ObservationError as exc:
                self.observation_errors += 1
                self.last_error = str(exc)
        action = None
        if obs is not None and age <= self.safety.timeout_s and np.all(np.isfinite(obs)) and self.safety.latched is None:
            self.planner.observe(self.processors.apply(obs))
            action = self.planner.action(self.tick_index, wait=self.transport.stepped)
        command, verdict = self.safety.command(action, obs, age, measured)
        if verdict is not self.verdict and not waiting_for_episode:  # a simulator reset is no hold to report
            self._report(verdict, snapshot, obs)
        if self.safety.latched is None or self.config.safety.after_latch == "hold":
            self.transport.send(command[self.command_index], snapshot.source_stamp_ns)
            self.sent_at = time.perf_counter()
            if self.first_command_at is None:
                self.first_command_at = self.sent_at
        if self.config.shadow:
            self._compare_shadow(command, measured)
        self.tick_index += 1
        self.planner.run_pending()  # on_tick planning: after the command is out, so it adds no latency
        return command, verdict

    def _report(self, verdict: Verdict, snapshot: ObservationSnapshot, obs: np.ndarray | None) -> None:
        """One log line when the tick's verdict changes: a hold and its reason, a latch, a recovery."""
        previous, self.verdict = self.verdict, verdict
        if verdict is Verdict.NO_ACTION and self.tick_index < self._armed_at_tick + self.config.lead_ticks + 1:
            return  # the first plan is still lead_ticks away: expected, not worth a warning
        if verdict in HOLDS:
            reason = {
                Verdict.STALE: lambda: f"no fresh observation within {self.safety.timeout_s * 1e3:.0f} ms: "
                                       f"{self.layout.oldest_input(snapshot)}",
                Verdict.NO_ACTION: lambda: "no planned action for this tick (inference late)",
                Verdict.NONFINITE: lambda: f"{self.safety.hold_reason}: "
                                           f"{self.layout.nonfinite_inputs(obs, snapshot) if obs is not None else ''}",
                Verdict.TRACKING: lambda: self.safety.hold_reason,
            }[verdict]
            now = time.monotonic()
            last, suppressed = self._hold_logged.get(verdict.value, (-np.inf, 0))
            if now - last >= self.config.hold_log_interval_s:
                log.warning("hold (%s) at tick %d: %s%s", verdict.value, self.tick_index, reason(),
                            f" [{suppressed} more since the last such line]" if suppressed else "")
                self._hold_logged[verdict.value] = (now, 0)
            else:
                self._hold_logged[verdict.value] = (last, suppressed + 1)
        elif verdict is Verdict.ESTOP:
            log.error("e-stop latched at tick %d: %s; %s until an operator reset", self.tick_index,
                      self.safety.latch_reason, self._after_latch_words())
        elif verdict is Verdict.FAULT:
            log.error("fault latched at tick %d: %s; %s until an operator reset", self.tick_index,
                      self.safety.latch_reason, self._after_latch_words())
        elif verdict is Verdict.RAMP:
            log.info("ramping to the first policy command at %s rad/s", self.config.safety.ramp_speed)
        elif verdict is Verdict.POLICY and previous in HOLDS:
            log.info("policy commands resume at tick %d (after the %s hold)", self.tick_index, previous.value)
        elif verdict is Verdict.POLICY:
            log.info("policy commands from tick %d on", self.tick_index)

    def _after_latch_words(self) -> str:
        return "holding the last safe target" if self.config.safety.after_latch == "hold" else "sending nothing"

    def _operator_reset(self, snapshot: ObservationSnapshot) -> None:
        """Re-arm after an e-stop or fault, through the ramp; refused while a joint is outside its limits."""
        record = {"tick": self.tick_index, "latched": self.safety.latched.value if self.safety.latched else None,
                  "reason": self.safety.latch_reason}
        try:
            measured = self.layout.joint_positions(snapshot)
        except ObservationError as exc:
            measured, outside = None, str(exc)
        else:
            outside = self._outside_limits(measured)
        if self.safety.latched is None:
            record["outcome"] = "ignored: nothing latched"
        elif outside or measured is None or not np.all(np.isfinite(measured)):
            record["outcome"] = f"refused: {outside or 'non-finite joint positions'}"
        else:
            self.safety.reset(measured)
            self.transport.clear_estop()
            self.planner.reset()
            self._armed_at_tick = self.tick_index
            record["outcome"] = "re-armed through the ramp"
        self.resets.append(record)
        log.warning("operator reset at tick %d (latched: %s): %s", self.tick_index, record["latched"], record["outcome"])

    def _compare_shadow(self, command: np.ndarray, measured: np.ndarray | None) -> None:
        """|previous would-be command - this tick's measured position|: how far shadow mode is from the real motion."""
        if measured is not None and self._shadow_last is not None and len(self.shadow_errors) < self.config.max_timing_records:
            self.shadow_errors.append(np.abs(self._shadow_last - measured))
        self._shadow_last = command[: len(self.robot.joints)].copy()  # without the gripper, which is not measured

    def _start_episode(self, snapshot) -> bool:
        """A simulator reset the world: replan from scratch and re-anchor the rate limiter.

        Waits (holding) until every joint has a reading from after the episode's start event;
        anchoring on the previous episode's last state would drag the new episode's first targets
        towards it at the rate limit. No ramp: the simulator moved the robot, not an operator.
        """
        readings = [snapshot.joints.get(n) for n in self.robot.joint_names]
        if any(r is None or r.received_at < snapshot.episode_started_at or not np.isfinite(r.position) for r in readings):
            return False
        if any(received_at < snapshot.episode_started_at for _, received_at in snapshot.arrays.values()):
            return False  # the previous episode's goal
        self.episode = snapshot.episode
        self.planner.reset()
        self.safety.anchor(self.layout.joint_positions(snapshot), warmup=False, ramp=False)
        self._armed_at_tick = self.tick_index
        return True

    def _raise_priority(self) -> None:
        priority = self.config.realtime_priority
        if priority is None:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread
        except (PermissionError, OSError, AttributeError) as exc:
            self.last_error = f"could not set SCHED_FIFO priority {priority}: {exc}"
            log.warning(self.last_error)

    def _loop(self) -> None:
        self._raise_priority()
        cpu_latency = CpuLatencyRequest(self.config.cpu_latency_us)  # holds nothing for None
        if cpu_latency.error:
            self.last_error = cpu_latency.error
        period, spin = self.period_s, self.config.spin_s
        prefetch_lead = self.config.prefetch_lead_s if period > 2 * self.config.prefetch_lead_s else None
        t0 = time.perf_counter()
        k = 0
        try:
            while not self._stop.is_set():
                if prefetch_lead is not None:
                    self._prefetch_until(t0 + k * period - prefetch_lead)
                start = wait_until(t0 + k * period, spin)
                self.tick()
                end = time.perf_counter()
                if len(self.tick_starts) < self.config.max_timing_records:
                    self.tick_starts.append(start)
                    if self.sent_at >= start:  # nothing is sent after a latch with after_latch=silent
                        self.tick_durations.append(self.sent_at - start)  # read to send, without on-tick planning
                k += 1
                if end > t0 + k * period + period:  # more than a whole period late: skip, do not burst
                    skipped = int((end - t0) / period) - k + 1
                    self.overruns += skipped
                    k += skipped
        except BaseException as exc:  # noqa: BLE001 - reported by run_for/deactivate
            self._fatal = exc
            log.exception("policy runner loop failed")
        finally:
            cpu_latency.close()

    def _prefetch_until(self, until: float) -> None:
        """Sleep until `until` (perf_counter) in slices of prefetch_every_s, taking what has arrived after each."""
        while (remaining := until - time.perf_counter()) > 0:
            time.sleep(min(remaining, self.config.prefetch_every_s))
            self.transport.prefetch()

    # -- reporting ---------------------------------------------------------------------------
    @property
    def outcome(self) -> str:
        """How the run stands: "estop" or "fault" while latched, else "clean"."""
        return self.safety.latched.value if self.safety.latched is not None else "clean"

    def status_line(self) -> str:
        """One short line for a live terminal display."""
        s = self.safety.stats
        held = s.stale_ticks + s.no_action_ticks + s.nonfinite_ticks + s.tracking_ticks
        latched = f" LATCHED {self.safety.latched.value.upper()}: {self.safety.latch_reason[:60]}" if self.safety.latched else ""
        return (f"{self.state.value} tick {self.tick_index} {self.verdict.value if self.verdict else '-'} "
                f"policy {s.policy_ticks} held {held} ramp {s.ramp_ticks} overruns {self.overruns}{latched}")

    def stats(self) -> dict:
        jitter_ms = period_jitter_ms(self.tick_starts, self.period_s) if len(self.tick_starts) > 2 else np.zeros(1)
        tick_ms = np.asarray(self.tick_durations) * 1e3 if self.tick_durations else np.zeros(1)
        s = self.safety.stats
        stats = {
            "state": self.state.value,
            "outcome": self.outcome,
            "ticks": self.tick_index,
            "policy_ticks": s.policy_ticks,
            "warmup_ticks": s.warmup_ticks,
            "ramp_ticks": s.ramp_ticks,
            "stale_ticks": s.stale_ticks,
            "no_action_ticks": s.no_action_ticks,
            "nonfinite_ticks": s.nonfinite_ticks,
            "tracking_ticks": s.tracking_ticks,
            "fault_ticks": s.fault_ticks,
            "estop_ticks": s.estop_ticks,
            "clipped_ticks": s.clipped_ticks,
            "rate_limited_ticks": s.rate_limited_ticks,
            "gripper_clipped_ticks": s.gripper_clipped_ticks,
            "gripper_rate_limited_ticks": s.gripper_rate_limited_ticks,
            "latched": self.safety.latched.value if self.safety.latched else None,
            "latch_reason": self.safety.latch_reason,
            "latches": list(s.faults),
            "resets": list(self.resets),
            "start_out_of_distribution": list(self.out_of_distribution),
            "episode_wait_ticks": self.episode_wait_ticks,
            "observation_errors": self.observation_errors,
            "last_error": self.last_error,
            "overruns": self.overruns,
            "jitter_p50_ms": float(np.percentile(jitter_ms, 50)),
            "jitter_p99_ms": float(np.percentile(jitter_ms, 99)),
            "tick_p50_ms": float(np.percentile(tick_ms, 50)),
            "tick_p99_ms": float(np.percentile(tick_ms, 99)),
            "planner": {**vars(self.planner.stats), "on_tick": self.planner.on_tick,
                        "warmup_plan_ms": self.warmup_plan_s * 1e3} if self.planner else {},
            "transport": self.transport.diagnostics(),
        }
        if self.config.shadow:
            errors = np.asarray(self.shadow_errors) if self.shadow_errors else np.full((1, len(self.robot.joints)), np.nan)
            stats["shadow"] = {
                "samples": len(self.shadow_errors),
                "joints": list(self.robot.joint_names),
                "abs_error_mean_rad": np.mean(errors, axis=0).round(6).tolist(),
                "abs_error_p95_rad": np.percentile(errors, 95, axis=0).round(6).tolist(),
                "abs_error_max_rad": np.max(errors, axis=0).round(6).tolist(),
            }
        return stats
