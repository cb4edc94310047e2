"""The last gate between a policy and the hardware: limits, rate limit, ramp, tracking bound, watchdog, NaN guard, e-stop.

Pure numpy, no ROS, so every rule here is unit-tested without middleware.

What "hold" means. For a position interface the layer holds by re-sending the last safe target
(not by sending nothing). Both leave a forward position controller where it is, because that
controller keeps its last command; re-sending additionally keeps hardware-side command-timeout
watchdogs (which brake when the command stream stops) from tripping on a sensor dropout of a few
periods, and it makes the hold visible in the command stream, so tests and logs can check it. For
a velocity interface the hold is zeros: velocity controllers do not stop on their own.

Latches. A non-finite action or an e-stop request latches at once: the layer holds until `reset()`
is called by an operator. A non-finite observation holds at once and latches only when it persists
for `nonfinite_latch_ticks` consecutive ticks or `nonfinite_latch_s` seconds, whichever comes
first. Why not latch on the first one: a single NaN from a driver (an encoder read that failed once,
an uninitialised field in one message) is common and the hold already makes it harmless; latching
on it cost whole runs until a restart. A dead sensor keeps sending NaN, and that latches within the
default 0.2 s (10 ticks at 50 Hz), while the robot holds. A stale observation never latches;
commands resume once fresh observations arrive (that is a dropout, not a fault).

Ramp. After `anchor()` (activation, or an operator reset) the first policy command is not sent as
is: the layer freezes it and moves from the measured pose towards it at `ramp_speed` rad/s; policy
actions are used again once it is reached. Tracking bound: a position command further than
`tracking_bound` rad from the measured position of any joint is not sent; the layer holds and says
which joint.

Gripper. A robot with a gripper (`RobotSpec.gripper`) takes one more value after its joints. The
layer clips it to the gripper's limits and changes it by at most its `max_velocity` units/s (scaled
by `velocity_scale` like the joints); until the policy's first command after an anchor it sends the
middle of the gripper's range (robosuite's gripper acts on the command's sign, so its 0 leaves the
fingers where they are), during the ramp it moves towards the first policy command's value, and on
every hold it repeats its last command: a hold must not open a hand that holds something. Neither
the ramp from a measured pose nor the tracking bound applies to it: the gripper is not measured as
a joint, and fingers closed on an object never reach their target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from robotune.core.spec import JointSpec, RobotSpec


class Verdict(str, Enum):
    """Why a tick sent what it sent."""

    POLICY = "policy"  # the policy's action, after clipping and rate limiting
    WARMUP = "warmup"  # holding while the observation history fills
    STALE = "stale"  # observations older than the timeout: hold
    NO_ACTION = "no_action"  # the planner had no action ready for this tick: hold
    NONFINITE = "nonfinite"  # a non-finite observation, not (yet) latched: hold
    RAMP = "ramp"  # moving from the measured pose to the first policy command at ramp_speed
    TRACKING = "tracking"  # the command was further than tracking_bound from the measured position: hold
    FAULT = "fault"  # latched: non-finite action, or a non-finite observation that persisted
    ESTOP = "estop"  # latched: emergency stop


HOLDS = (Verdict.STALE, Verdict.NO_ACTION, Verdict.NONFINITE, Verdict.TRACKING)  # unlatched holds


@dataclass
class SafetyConfig:
    """Safety settings; the defaults suit a position-controlled arm at 20-500 Hz."""

    obs_timeout_s: float | None = None  # None: one control period, so a dropout holds within one tick
    warmup_ticks: int = 2  # hold ticks after activation before the first policy action
    position_margin: float = 0.0  # rad kept inside each joint's [lower, upper]
    velocity_scale: float = 1.0  # fraction of each joint's max_velocity the rate limiter allows
    # A non-finite observation holds at once and latches once it persists this many consecutive
    # ticks or this long (see the module docstring for the defaults); None disables that bound.
    nonfinite_latch_ticks: int | None = None
    nonfinite_latch_s: float | None = 0.2
    ramp_speed: float | None = 0.5  # rad/s from the measured pose to the first policy command; None: no ramp
    tracking_bound: float | None = 0.5  # rad between a position command and the measured position; None: off
    after_latch: str = "hold"  # after an e-stop or fault: "hold" re-sends the last safe target, "silent" sends nothing

    def __post_init__(self) -> None:
        if self.after_latch not in ("hold", "silent"):
            raise ValueError(f"safety.after_latch must be 'hold' or 'silent', got '{self.after_latch}'")
        for name in ("nonfinite_latch_ticks", "nonfinite_latch_s", "ramp_speed", "tracking_bound"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"safety.{name} must be positive or null, got {value}")


@dataclass
class SafetyStats:
    ticks: int = 0
    policy_ticks: int = 0
    warmup_ticks: int = 0
    stale_ticks: int = 0
    no_action_ticks: int = 0
    nonfinite_ticks: int = 0
    ramp_ticks: int = 0
    tracking_ticks: int = 0
    fault_ticks: int = 0
    estop_ticks: int = 0
    clipped_ticks: int = 0  # ticks where a joint limit changed the target
    rate_limited_ticks: int = 0  # ticks where the per-tick delta clamp changed the target
    gripper_clipped_ticks: int = 0  # the same two for the gripper's command
    gripper_rate_limited_ticks: int = 0
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
        self.ramp_step = np.minimum((self.config.ramp_speed or 0.0) * self.period_s, self.max_step)
        limits = [t for t in (self.config.nonfinite_latch_ticks,
                              self.config.nonfinite_latch_s and max(1, math.ceil(self.config.nonfinite_latch_s * rate_hz)))
                  if t]
        self.nonfinite_latch_after = min(limits) if limits else None  # consecutive ticks
        self.gripper = robot.gripper
        self.action_dim = len(robot.joints) + (self.gripper is not None)
        self.gripper_max_step = self.gripper.max_velocity * self.config.velocity_scale * self.period_s if self.gripper else 0.0
        self.gripper_command = gripper_idle(self.gripper) if self.gripper else 0.0  # the last one sent
        self.stats = SafetyStats()
        self.last_target: np.ndarray | None = None  # the joints' (without the gripper)
        self.latched: Verdict | None = None
        self.latch_reason = ""
        self.hold_reason = ""  # why the last TRACKING or NONFINITE hold held
        self._warmup_left = self.config.warmup_ticks
        self._nonfinite_run = 0
        self._ramping = False
        self._ramp_target: np.ndarray | None = None
        self._ramp_gripper: np.ndarray = np.zeros(0)  # the first policy command's gripper value, during the ramp

    # -- state -------------------------------------------------------------------------------
    def anchor(self, measured_position: np.ndarray, warmup: bool = True, ramp: bool = True) -> None:
        """Start from the measured position: the first targets move away from it at most max_step,
        and with `ramp` the first policy command is approached at ramp_speed."""
        position = np.asarray(measured_position, dtype=np.float64)
        if position.shape != (len(self.robot.joints),) or not np.all(np.isfinite(position)):
            raise ValueError(f"cannot anchor safety at {position!r}: need {len(self.robot.joints)} finite joint positions")
        self.last_target = np.clip(position, self.lower, self.upper)
        if self.gripper is not None:
            self.gripper_command = gripper_idle(self.gripper)
        if warmup:
            self._warmup_left = self.config.warmup_ticks
        self._ramping = ramp and self.config.ramp_speed is not None and not self.velocity_interface
        self._ramp_target = None
        self._nonfinite_run = 0

    @property
    def ramping(self) -> bool:
        return self._ramping

    def trigger_estop(self, reason: str = "emergency stop requested") -> None:
        self._latch(Verdict.ESTOP, reason)

    def reset(self, measured_position: np.ndarray) -> None:
        """Operator reset: clear a latch and re-anchor at the measured position (through the ramp)."""
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
        """The joints' hold (without the gripper, whose hold is its last command)."""
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
            self._nonfinite_run += 1
            bad = np.flatnonzero(~np.isfinite(obs)).tolist()
            self.hold_reason = f"non-finite observation entries {bad} for {self._nonfinite_run} tick(s)"
            if self.nonfinite_latch_after is not None and self._nonfinite_run >= self.nonfinite_latch_after:
                self._latch(Verdict.FAULT, self.hold_reason)
                return Verdict.FAULT
            return Verdict.NONFINITE
        self._nonfinite_run = 0
        return None

    def command(self, action: np.ndarray | None, obs: np.ndarray | None, obs_age_s: float,
                measured: np.ndarray | None = None) -> tuple[np.ndarray, Verdict]:
        """The command to send this tick and why. Never returns a target outside the limits.

        `action`: (joints,) or, with a gripper, (joints + 1,) with the gripper last; the command has the same layout.
        `measured`: the joint positions this tick (robot joint order), for the tracking bound.
        """
        self.stats.ticks += 1
        verdict = self._decide(action, obs, obs_age_s)
        gripper_target = np.zeros(0)  # the gripper value to move towards this tick; empty: repeat the last
        if verdict is Verdict.POLICY:
            action = np.asarray(action, dtype=np.float64)
            arm_action = action[: len(self.robot.joints)]
            if self._ramping:
                if self._ramp_target is None:
                    self._ramp_gripper = action[len(self.robot.joints):]
                command, verdict = self._ramp(np.clip(arm_action, self.lower, self.upper)), Verdict.RAMP
                gripper_target = self._ramp_gripper
            else:
                command = self._limit(arm_action)
                gripper_target = action[len(self.robot.joints):]
            if measured is not None and not self._within_tracking_bound(command, measured):
                verdict = Verdict.TRACKING
                command, gripper_target = self.hold_command(), np.zeros(0)
        if verdict is Verdict.POLICY:
            self.stats.policy_ticks += 1
        elif verdict is Verdict.RAMP:
            self.stats.ramp_ticks += 1
        else:
            command = self.hold_command()
            counter = f"{verdict.value}_ticks"
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        if not self.velocity_interface:
            self.last_target = command.copy()
        if self.gripper is not None:
            if gripper_target.size:
                self.gripper_command = self._limit_gripper(float(gripper_target[0]))
            command = np.append(command, self.gripper_command)
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
        if action.shape != (self.action_dim,) or not np.all(np.isfinite(action)):
            self.stats.nonfinite_actions += 1
            self._latch(Verdict.FAULT, f"policy produced an invalid action {action.tolist()}")
            return Verdict.FAULT
        return Verdict.POLICY

    def _ramp(self, clipped: np.ndarray) -> np.ndarray:
        """Step from the last target towards the frozen first command at ramp_speed; ends when reached."""
        if self._ramp_target is None:
            self._ramp_target = clipped
        step = np.clip(self._ramp_target - self.last_target, -self.ramp_step, self.ramp_step)
        command = np.clip(self.last_target + step, self.lower, self.upper)
        if np.allclose(command, self._ramp_target, rtol=0.0, atol=1e-12):
            self._ramping = False
        return command

    def _within_tracking_bound(self, command: np.ndarray, measured: np.ndarray) -> bool:
        bound = self.config.tracking_bound
        if bound is None or self.velocity_interface:
            return True
        error = np.abs(command - np.asarray(measured, dtype=np.float64))
        if np.all(error <= bound):  # a NaN measurement fails this too
            return True
        worst = int(np.nanargmax(np.where(np.isfinite(error), error, np.inf)))
        self.hold_reason = (f"command for joint '{self.robot.joints[worst].name}' is {error[worst]:.3f} rad from its "
                            f"measured position (tracking_bound {bound} rad)")
        return False

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

    def _limit_gripper(self, target: float) -> float:
        """The gripper command within its limits and at most gripper_max_step from the last one."""
        clipped = min(max(target, self.gripper.lower), self.gripper.upper)
        stepped = min(max(clipped, self.gripper_command - self.gripper_max_step), self.gripper_command + self.gripper_max_step)
        self.stats.gripper_clipped_ticks += int(clipped != target)
        self.stats.gripper_rate_limited_ticks += int(stepped != clipped)
        return stepped


def gripper_idle(gripper: JointSpec) -> float:
    """The gripper command sent before the policy's first: the middle of its range (see the module docstring)."""
    return 0.5 * (gripper.lower + gripper.upper)


def command_channels(robot: RobotSpec) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(names, lower, upper) of what a command carries, in action order: the joints, then the gripper if any."""
    channels = robot.joints + ((robot.gripper,) if robot.gripper else ())
    return tuple(c.name for c in channels), np.array([c.lower for c in channels]), np.array([c.upper for c in channels])


def is_within_limits(command: np.ndarray, robot: RobotSpec, tolerance: float = 1e-9) -> bool:
    """True if a position command (joints, then the gripper if any) is finite and inside every limit (used by tests and the sim)."""
    command = np.asarray(command, dtype=np.float64)
    _, lower, upper = command_channels(robot)
    return bool(
        command.shape == lower.shape
        and np.all(np.isfinite(command))
        and np.all(command >= lower - tolerance)
        and np.all(command <= upper + tolerance)
    )

