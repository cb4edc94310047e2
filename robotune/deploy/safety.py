"""The last gate between a policy and the hardware: limits, rate limit, watchdog, NaN guard, e-stop.

Pure numpy, no ROS, so every rule here is unit-tested without middleware.

What "hold" means. For a position interface the layer holds by re-sending the last safe target
(not by sending nothing). Both leave a forward position controller where it is, because that
controller keeps its last command; re-sending additionally keeps hardware-side command-timeout
watchdogs (which brake when the command stream stops) from tripping on a sensor dropout of a few
periods, and it makes the hold visible in the command stream, so tests and logs can check it. For
a velocity interface the hold is zeros: velocity controllers do not stop on their own.

Latches. A non-finite observation or action, or an e-stop request, latches: the layer holds until
`reset()` is called by an operator. A stale observation does not latch; commands resume once fresh
observations arrive (that is a dropout, not a fault).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from robotune.core.spec import RobotSpec


class Verdict(str, Enum):
    """Why a tick sent what it sent."""

    POLICY = "policy"  # the policy's action, after clipping and rate limiting
    WARMUP = "warmup"  # holding while the observation history fills
    STALE = "stale"  # observations older than the timeout: hold
    NO_ACTION = "no_action"  # the planner had no action ready for this tick: hold
    FAULT = "fault"  # latched: non-finite observation or action
    ESTOP = "estop"  # latched: emergency stop


@dataclass
class SafetyConfig:
    """Safety settings; the defaults suit a position-controlled arm at 20-500 Hz."""

    obs_timeout_s: float | None = None  # None: one control period, so a dropout holds within one tick
    warmup_ticks: int = 2  # hold ticks after activation before the first policy action
    position_margin: float = 0.0  # rad kept inside each joint's [lower, upper]
    velocity_scale: float = 1.0  # fraction of each joint's max_velocity the rate limiter allows
    latch_on_nonfinite_obs: bool = True  # a NaN/inf joint reading is treated as a sensor fault


@dataclass
class SafetyStats:
    ticks: int = 0
    policy_ticks: int = 0
    warmup_ticks: int = 0
    stale_ticks: int = 0
    no_action_ticks: int = 0
    fault_ticks: int = 0
    estop_ticks: int = 0
    clipped_ticks: int = 0  # ticks where a joint limit changed the target
    rate_limited_ticks: int = 0  # ticks where the per-tick delta clamp changed the target
    nonfinite_obs: int = 0
    nonfinite_actions: int = 0
    faults: list[str] = field(default_factory=list)


class SafetyLayer:
    """Turns a proposed action into a command that is within limits, or into a hold.

    Call `anchor(measured_position)` before the first tick (and after the robot is moved by
    something other than this layer, e.g. a simulator reset), then `command(...)` once per tick.
    """

    def __init__(self, robot: RobotSpec, rate_hz: float, config: SafetyConfig | None = None) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.robot = robot
        self.config = config or SafetyConfig()
        self.period_s = 1.0 / rate_hz
        self.timeout_s = self.config.obs_timeout_s if self.config.obs_timeout_s is not None else self.period_s
        margin = self.config.position_margin
        self.lower = robot.lower + margin
        self.upper = robot.upper - margin
        if np.any(self.lower >= self.upper):
            raise ValueError(f"safety.position_margin {margin} leaves no room inside the joint limits of '{robot.name}'")
        # Largest change of a position target in one tick; inf where the robot spec gives no velocity limit.
        self.max_step = robot.max_velocity * self.config.velocity_scale * self.period_s
        self.velocity_interface = robot.command_interface == "velocity"
        self.stats = SafetyStats()
        self.last_target: np.ndarray | None = None
        self.latched: Verdict | None = None
        self.latch_reason = ""
        self._warmup_left = self.config.warmup_ticks

    # -- state -------------------------------------------------------------------------------
    def anchor(self, measured_position: np.ndarray, warmup: bool = True) -> None:
        """Start from the measured position: the first targets move away from it at most max_step."""
        position = np.asarray(measured_position, dtype=np.float64)
        if position.shape != (len(self.robot.joints),) or not np.all(np.isfinite(position)):
            raise ValueError(f"cannot anchor safety at {position!r}: need {len(self.robot.joints)} finite joint positions")
        self.last_target = np.clip(position, self.lower, self.upper)
        if warmup:
            self._warmup_left = self.config.warmup_ticks

    def trigger_estop(self, reason: str = "emergency stop requested") -> None:
        self._latch(Verdict.ESTOP, reason)

    def reset(self, measured_position: np.ndarray) -> None:
        """Operator reset: clear a latch and re-anchor at the measured position."""
        self.latched = None
        self.latch_reason = ""
        self.anchor(measured_position)

    def _latch(self, verdict: Verdict, reason: str) -> None:
        if self.latched is None or verdict is Verdict.ESTOP:
            self.latched = verdict
            self.latch_reason = reason
            self.stats.faults.append(reason)

    # -- per tick ----------------------------------------------------------------------------
    def hold_command(self) -> np.ndarray:
        if self.velocity_interface:
            return np.zeros(len(self.robot.joints))
        assert self.last_target is not None, "SafetyLayer.anchor() must be called before the first tick"
        return self.last_target.copy()

    def check_observation(self, obs: np.ndarray | None, age_s: float) -> Verdict | None:
        """A hold verdict if the observation cannot be used this tick, else None."""
        if obs is None or not age_s <= self.timeout_s:  # `not <=` also catches a NaN age
            return Verdict.STALE
        if not np.all(np.isfinite(obs)):
            self.stats.nonfinite_obs += 1
            if self.config.latch_on_nonfinite_obs:
                bad = np.flatnonzero(~np.isfinite(obs)).tolist()
                self._latch(Verdict.FAULT, f"non-finite observation entries {bad}")
                return Verdict.FAULT
            return Verdict.STALE
        return None

    def command(self, action: np.ndarray | None, obs: np.ndarray | None, obs_age_s: float) -> tuple[np.ndarray, Verdict]:
        """The command to send this tick and why. Never returns a target outside the limits."""
        self.stats.ticks += 1
        verdict = self._decide(action, obs, obs_age_s)
        if verdict is Verdict.POLICY:
            command = self._limit(np.asarray(action, dtype=np.float64))
            self.stats.policy_ticks += 1
        else:
            command = self.hold_command()
            counter = f"{verdict.value}_ticks"
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        if not self.velocity_interface:
            self.last_target = command.copy()
        return command, verdict

    def _decide(self, action: np.ndarray | None, obs: np.ndarray | None, obs_age_s: float) -> Verdict:
        if self.latched is not None:
            return self.latched
        hold = self.check_observation(obs, obs_age_s)
        if hold is not None:
            return hold
        if self._warmup_left > 0:
            self._warmup_left -= 1
            return Verdict.WARMUP
        if action is None:
            return Verdict.NO_ACTION
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (len(self.robot.joints),) or not np.all(np.isfinite(action)):
            self.stats.nonfinite_actions += 1
            self._latch(Verdict.FAULT, f"policy produced an invalid action {action.tolist()}")
            return Verdict.FAULT
        return Verdict.POLICY

    def _limit(self, action: np.ndarray) -> np.ndarray:
        if self.velocity_interface:
            limit = self.robot.max_velocity * self.config.velocity_scale
            clipped = np.clip(action, -limit, limit)
            self.stats.clipped_ticks += int(not np.array_equal(clipped, action))
            return clipped
        clipped = np.clip(action, self.lower, self.upper)
        self.stats.clipped_ticks += int(not np.array_equal(clipped, action))
        assert self.last_target is not None, "SafetyLayer.anchor() must be called before the first tick"
        stepped = np.clip(clipped, self.last_target - self.max_step, self.last_target + self.max_step)
        self.stats.rate_limited_ticks += int(not np.array_equal(stepped, clipped))
        # The previous target is inside the limits, so stepping towards a clipped target stays inside.
        return np.clip(stepped, self.lower, self.upper)


def is_within_limits(command: np.ndarray, robot: RobotSpec, tolerance: float = 1e-9) -> bool:
    """True if a position command is finite and inside every joint's limits (used by tests and the sim)."""
    command = np.asarray(command, dtype=np.float64)
    return bool(
        command.shape == (len(robot.joints),)
        and np.all(np.isfinite(command))
        and np.all(command >= robot.lower - tolerance)
        and np.all(command <= robot.upper + tolerance)
    )

