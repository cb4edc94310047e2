"""The policy runner: observations to policy to safety layer to commands, at a fixed rate.

Lifecycle, as in a ROS 2 managed node (the runner is transport-agnostic, so it is a plain state
machine rather than an rclpy lifecycle node):

    UNCONFIGURED --configure()--> INACTIVE --activate()--> ACTIVE
                  ACTIVE --deactivate()--> INACTIVE --shutdown()--> FINALIZED

`configure` starts the transport and waits for one complete observation, so a wrong joint name
or topic fails here with a message that names it, before anything moves. `activate` anchors the
safety layer at the measured position and starts the control thread. Each tick reads the latest
signals, assembles the observation in `TaskSpec.obs_names` order, takes the planned action for
this tick and sends what the safety layer allows.

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
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from robotune.core.policy import Policy
from robotune.core.spec import RobotSpec, TaskSpec
from robotune.deploy.cpu_latency import CpuLatencyRequest
from robotune.deploy.inference_process import InferenceProcess, InferenceProcessError
from robotune.deploy.observation import ArrayTopic, ObservationError, ObservationLayout
from robotune.deploy.planner import ChunkPlanner
from robotune.deploy.safety import SafetyConfig, SafetyLayer, Verdict
from robotune.deploy.transport import Transport

log = logging.getLogger(__name__)


class DeployError(RuntimeError):
    """Deployment cannot start or continue; the message says what to fix."""


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
    # Plan in a child process that loads this checkpoint directory (the one `policy` came from)
    # instead of a thread, so inference does not compete with the tick for this process's GIL
    # (see inference_process.py: on the 2-core machine it measured slower than the thread).
    # None: plan in a thread. Needs lead_ticks > 0.
    inference_checkpoint: str | None = None
    # Compute plans in the control thread right after each tick's command is sent, instead of in a
    # planner thread: no second Python thread then competes with the tick for the GIL, and the
    # plan still adds nothing to the tick's latency. On the shared 2-core machine an interleaved
    # A/B (deploy_latency.py --plan-on-tick on|off, 100 Hz, 3 runs each) was within its noise.
    # None: do so when the slowest warm-up plan took at most half a control period.
    plan_on_tick: bool | None = None
    safety: SafetyConfig = field(default_factory=SafetyConfig)


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
    ) -> None:
        robot = robot or task.robot
        if robot is None:
            raise DeployError(f"task '{task.name}' has no RobotSpec; pass robot=... to PolicyRunner")
        if task.action_dim != len(robot.joints):
            raise DeployError(
                f"task '{task.name}' has {task.action_dim} actions but robot '{robot.name}' has "
                f"{len(robot.joints)} joints {list(robot.joint_names)}"
            )
        if config.cpu_latency_us is not None and config.cpu_latency_us < 0:
            raise DeployError(f"RunnerConfig.cpu_latency_us must be >= 0 µs or None, got {config.cpu_latency_us}")
        self.policy = policy
        self.task = task
        self.robot = robot
        self.transport = transport
        self.config = config
        self.layout = ObservationLayout(task, robot, observation_topics or {})
        self.safety = SafetyLayer(robot, config.rate_hz, config.safety)
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
        self.warmup_plan_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def configure(self) -> None:
        self._expect(RunnerState.UNCONFIGURED, "configure")
        remote = None
        if self.config.inference_checkpoint is not None and self.config.lead_ticks > 0:
            # Before the transport: loading takes seconds, and a bad checkpoint fails before any robot I/O.
            cfg = self.policy.config
            try:
                remote = InferenceProcess(self.config.inference_checkpoint, (cfg.obs_horizon, self.policy.obs_dim),
                                          (cfg.horizon, self.task.action_dim), self.config.deterministic, self.config.seed)
            except InferenceProcessError as exc:
                raise DeployError(f"RunnerConfig.inference_checkpoint: {exc}") from exc
        self.transport.start()
        deadline = time.monotonic() + self.config.configure_timeout_s
        while True:
            try:
                obs, _ = self.layout.assemble(self.transport.snapshot())
                break
            except ObservationError as exc:
                if time.monotonic() > deadline:
                    self.transport.close()
                    if remote is not None:
                        remote.close()
                    rejected = self.transport.rejection_summary()
                    raise DeployError(
                        f"no usable observation within {self.config.configure_timeout_s:.1f} s: {exc}"
                        + (f"; last message rejected: {rejected}" if rejected else "")
                    ) from exc
                time.sleep(0.005)
        if not np.all(np.isfinite(obs)):
            self.transport.close()
            if remote is not None:
                remote.close()
            raise DeployError(f"the first observation has non-finite entries: {dict(zip(self.task.obs_names, obs.tolist()))}")
        self.planner = ChunkPlanner(
            self.policy,
            remote=remote,
            lead_ticks=self.config.lead_ticks,
            blend_steps=self.config.blend_steps,
            deterministic=self.config.deterministic,
            seed=self.config.seed,
        )
        self.warmup_plan_s = self.planner.warm_up(obs)
        on_tick = self.config.plan_on_tick
        if on_tick is None:
            on_tick = remote is None and self.warmup_plan_s <= 0.5 * self.period_s
        self.planner.on_tick = on_tick
        self.state = RunnerState.INACTIVE

    def activate(self, start_thread: bool = True) -> None:
        """Anchor the safety layer and start ticking (in a thread unless the transport is stepped)."""
        self._expect(RunnerState.INACTIVE, "activate")
        snapshot = self.transport.snapshot()
        self.safety.anchor(self.layout.joint_positions(snapshot))
        self.episode = snapshot.episode
        self.planner.reset()
        self.state = RunnerState.ACTIVE
        if start_thread and not self.transport.stepped:
            if self.config.gil_switch_interval_s is not None:
                sys.setswitchinterval(self.config.gil_switch_interval_s)
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="policy-runner", daemon=True)
            self._thread.start()

    def deactivate(self) -> None:
        self._expect(RunnerState.ACTIVE, "deactivate")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.state = RunnerState.INACTIVE
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
        """Read, plan, check, send. Returns what was sent and why."""
        snapshot = self.transport.snapshot()
        if self.transport.estop_requested() and self.safety.latched is not Verdict.ESTOP:
            self.safety.trigger_estop(f"emergency stop received at tick {self.tick_index}")
        obs, age = None, float("inf")
        if snapshot.episode != self.episode and not self._start_episode(snapshot):
            self.episode_wait_ticks += 1
        else:
            try:
                obs, age = self.layout.assemble(snapshot)
            except ObservationError as exc:
                self.observation_errors += 1
                self.last_error = str(exc)
        action = None
        if obs is not None and age <= self.safety.timeout_s and np.all(np.isfinite(obs)) and self.safety.latched is None:
            self.planner.observe(obs)
            action = self.planner.action(self.tick_index, wait=self.transport.stepped)
        command, verdict = self.safety.command(action, obs, age)
        self.transport.send(command, snapshot.source_stamp_ns)
        self.sent_at = time.perf_counter()
        self.tick_index += 1
        self.planner.run_pending()  # on_tick planning: after the command is out, so it adds no latency
        return command, verdict

    def _start_episode(self, snapshot) -> bool:
        """A simulator reset the world: replan from scratch and re-anchor the rate limiter.

        Waits (holding) until every joint has a reading from after the episode's start event;
        anchoring on the previous episode's last state would drag the new episode's first targets
        towards it at the rate limit.
        """
        readings = [snapshot.joints.get(n) for n in self.robot.joint_names]
        if any(r is None or r.received_at < snapshot.episode_started_at or not np.isfinite(r.position) for r in readings):
            return False
        if any(received_at < snapshot.episode_started_at for _, received_at in snapshot.arrays.values()):
            return False  # the previous episode's goal
        self.episode = snapshot.episode
        self.planner.reset()
        self.safety.anchor(self.layout.joint_positions(snapshot), warmup=False)
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
        t0 = time.perf_counter()
        k = 0
        try:
            while not self._stop.is_set():
                start = wait_until(t0 + k * period, spin)
                self.tick()
                end = time.perf_counter()
                if len(self.tick_starts) < self.config.max_timing_records:
                    self.tick_starts.append(start)
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

    # -- reporting ---------------------------------------------------------------------------
    def stats(self) -> dict:
        jitter_ms = period_jitter_ms(self.tick_starts, self.period_s) if len(self.tick_starts) > 2 else np.zeros(1)
        tick_ms = np.asarray(self.tick_durations) * 1e3 if self.tick_durations else np.zeros(1)
        s = self.safety.stats
        return {
            "state": self.state.value,
            "ticks": self.tick_index,
            "policy_ticks": s.policy_ticks,
            "warmup_ticks": s.warmup_ticks,
            "stale_ticks": s.stale_ticks,
            "no_action_ticks": s.no_action_ticks,
            "fault_ticks": s.fault_ticks,
            "estop_ticks": s.estop_ticks,
            "clipped_ticks": s.clipped_ticks,
            "rate_limited_ticks": s.rate_limited_ticks,
            "latched": self.safety.latched.value if self.safety.latched else None,
            "latch_reason": self.safety.latch_reason,
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
