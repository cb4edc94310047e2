"""Scripted experts for the robosuite tasks, acting through the OSC_POSE controller or on joint targets.

Each expert is a sequence of phases (approach, descend, grasp, lift, ...). A phase moves the end
effector towards a target computed from the current observation, turns the gripper to a target yaw
about the vertical, and holds the gripper open or closed; it ends when the end effector is within
`tolerance` of its target for `hold_steps` steps, or after `max_steps` (a noisy expert may never settle).

`noise_std` adds Gaussian noise, in the action's normalised units (1 = a full 5 cm / 0.5 rad step),
to the arm part of every action, so demonstrations of chosen imperfection can be made for fine-tuning.

`JointPositionExpert` runs the same phases in a JOINT_POSITION environment: it turns each OSC_POSE step
into the joint targets that move the end effector by it (differential inverse kinematics at the
observed joint positions), closed loop, so its demonstrations are the very actions that succeeded there.
Relabelling OSC episodes with the joint positions they reached instead, and replaying those open loop
with the JOINT_POSITION controller, succeeded in 11 of 50 Lift episodes (`benchmarks/experts.py
--replay`): that controller trails its targets by several steps, and the grasp then comes before the
hand is down.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from robotune.robots.robosuite.kinematics import ArmKinematics
from robotune.robots.robosuite.robot import GRIPPER_CLOSED, GRIPPER_OPEN

POSITION_STEP = 0.05  # m per unit OSC_POSE action (robosuite's BASIC output_max)
ROTATION_STEP = 0.5  # rad per unit OSC_POSE action
OPEN, CLOSED = GRIPPER_OPEN, GRIPPER_CLOSED
TABLE_CLEARANCE = 0.08  # m above a grasp point to approach from


def quat_xyzw_to_matrix(quat_xyzw: np.ndarray) -> np.ndarray:
    """(3, 3) rotation from robosuite's (x, y, z, w) quaternion."""
    matrix = np.zeros(9)
    mujoco.mju_quat2Mat(matrix, np.array([quat_xyzw[3], *quat_xyzw[:3]], dtype=np.float64))
    return matrix.reshape(3, 3)


def rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """Axis times angle (rad) of a (3, 3) rotation."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, rotation.reshape(-1))
    vector = np.zeros(3)
    mujoco.mju_quat2Vel(vector, quat, 1.0)
    return vector


def yaw_rotation(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_of(rotation: np.ndarray) -> float:
    """Heading (rad) of a frame's x axis in the horizontal plane."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def wrap_angle(angle: float, period: float = 2 * np.pi) -> float:
    """`angle` moved into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


class ObservationView:
    """Named slices of the flat observation that the experts read (positions in m, quaternions x, y, z, w)."""

    def __init__(self, obs_names: Sequence[str], object_name: str) -> None:
        def indices(prefix: str, fields: str) -> np.ndarray:
            names = [f"{prefix}.{field}" for field in fields.split()]
            missing = [n for n in names if n not in obs_names]
            if missing:
                raise ValueError(f"expert needs observation entries {missing}, which the task's obs_names lack")
            return np.array([list(obs_names).index(n) for n in names])

        self._eef_pos, self._eef_quat = indices("eef", "x y z"), indices("eef", "qx qy qz qw")
        self._object_pos, self._object_quat = indices(object_name, "x y z"), indices(object_name, "qx qy qz qw")

    def eef_position(self, obs: np.ndarray) -> np.ndarray:
        return obs[self._eef_pos].astype(np.float64)

    def eef_rotation(self, obs: np.ndarray) -> np.ndarray:
        return quat_xyzw_to_matrix(obs[self._eef_quat].astype(np.float64))

    def object_position(self, obs: np.ndarray) -> np.ndarray:
        return obs[self._object_pos].astype(np.float64)

    def object_rotation(self, obs: np.ndarray) -> np.ndarray:
        return quat_xyzw_to_matrix(obs[self._object_quat].astype(np.float64))


@dataclass(frozen=True)
class Phase:
    """One stage of a scripted manipulation; `target` and `yaw` are read from the observation each step."""

    name: str
    target: Callable[[np.ndarray], np.ndarray]  # end-effector position (m, world frame)
    gripper: float  # OPEN or CLOSED
    yaw: Callable[[np.ndarray], float] | None = None  # gripper yaw (rad) relative to its yaw at reset
    tolerance: float = 0.01  # m
    hold_steps: int = 0  # steps to stay once within tolerance, e.g. while the fingers close
    max_steps: int = 60


class PhaseExpert(ABC):
    """Runs `phases()` in order on OSC_POSE deltas; subclasses define the phases of one task."""

    def __init__(self, obs_names: Sequence[str], object_name: str, noise_std: float = 0.0) -> None:
        if noise_std < 0:
            raise ValueError(f"task.expert_noise must be >= 0, got {noise_std}")
        self.view = ObservationView(obs_names, object_name)
        self.noise_std = noise_std
        self._phases: list[Phase] = []
        self._phase = 0
        self._phase_steps = 0
        self._settled_steps = 0
        self._start_rotation = np.eye(3)
        self._rng = np.random.default_rng(0)

    @abstractmethod
    def phases(self) -> list[Phase]:
        """The task's phases; called at every reset, so targets may close over per-episode state."""

    def reset(self, obs: np.ndarray, rng: np.random.Generator) -> None:
        self._rng = rng
        self._start_rotation = self.view.eef_rotation(obs)
        self._phases = self.phases()
        self._phase, self._phase_steps, self._settled_steps = 0, 0, 0

    def start_yaw_offset(self, obs: np.ndarray) -> float:
        """Current gripper yaw minus its yaw at reset (rad)."""
        return wrap_angle(yaw_of(self.view.eef_rotation(obs)) - yaw_of(self._start_rotation))

    def aligned_yaw(self, obs: np.ndarray, object_yaw: float, symmetry: float) -> float:
        """The gripper yaw relative to reset that lines the fingers up with `object_yaw`, taking the
        nearest of the object's symmetric orientations (every `symmetry` rad) so the wrist turns least."""
        current = self.start_yaw_offset(obs)
        return current + wrap_angle(object_yaw - yaw_of(self._start_rotation) - current, symmetry)

    def act(self, obs: np.ndarray) -> np.ndarray:
        phase = self._phases[min(self._phase, len(self._phases) - 1)]
        eef = self.view.eef_position(obs)
        position_error = phase.target(obs) - eef
        yaw = phase.yaw(obs) if phase.yaw is not None else 0.0
        target_rotation = yaw_rotation(yaw) @ self._start_rotation
        rotation_error = rotation_vector(target_rotation @ self.view.eef_rotation(obs).T)

        action = np.zeros(7)
        # proportional control: an error of one full step (5 cm, 0.5 rad) or more commands a full step
        action[:3] = position_error / POSITION_STEP
        action[3:6] = rotation_error / ROTATION_STEP
        if self.noise_std > 0:
            action[:6] += self._rng.normal(0.0, self.noise_std, size=6)
        action[6] = phase.gripper
        self._advance(phase, float(np.linalg.norm(position_error)))
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _advance(self, phase: Phase, distance: float) -> None:
        self._phase_steps += 1
        self._settled_steps = self._settled_steps + 1 if distance < phase.tolerance else 0
        if self._settled_steps > phase.hold_steps or self._phase_steps >= phase.max_steps:
            self._phase = min(self._phase + 1, len(self._phases) - 1)
            self._phase_steps, self._settled_steps = 0, 0


class LiftExpert(PhaseExpert):
    """Lift: fingers squared to the cube, grasp it at its centre, raise it 20 cm."""

    LIFT_HEIGHT = 1.0  # m, world z; the table top is at 0.8

    def phases(self) -> list[Phase]:
        v = self.view
        cube_yaw = lambda o: self.aligned_yaw(o, yaw_of(v.object_rotation(o)), np.pi / 2)  # noqa: E731
        above = lambda o: v.object_position(o) + [0.0, 0.0, TABLE_CLEARANCE]  # noqa: E731
        return [
            Phase("approach", above, OPEN, yaw=cube_yaw, tolerance=0.01),
            Phase("descend", v.object_position, OPEN, yaw=cube_yaw, tolerance=0.008),
            Phase("grasp", v.object_position, CLOSED, yaw=cube_yaw, tolerance=1.0, hold_steps=8),
            Phase("lift", lambda o: np.r_[v.object_position(o)[:2], self.LIFT_HEIGHT], CLOSED, max_steps=1000),
        ]


class PickPlaceCanExpert(PhaseExpert):
    """PickPlaceCan: grasp the can from above, carry it over the walls into its quarter of the goal bin,
    let go, and move the hand away (robosuite counts the can as placed only once the hand has left)."""

    CARRY_HEIGHT = 1.05  # m, world z: the can's bottom clears the bin walls
    RELEASE_HEIGHT = 0.93  # m, hand height at release: the can drops about 3 cm onto the bin floor
    # robosuite's `target_bin_placements` for the can (object 3): the goal bin (bin2_pos = (0.1, 0.28, 0.8))
    # plus a quarter of the bin size (0.39, 0.49) in x and y; tests check it against the environment.
    TARGET_XY = np.array([0.1 + 0.39 / 4, 0.28 + 0.49 / 4])

    def phases(self) -> list[Phase]:
        v = self.view
        above = lambda o: v.object_position(o) + [0.0, 0.0, TABLE_CLEARANCE]  # noqa: E731
        over_target = np.r_[self.TARGET_XY, self.CARRY_HEIGHT]
        return [
            Phase("approach", above, OPEN, tolerance=0.01),
            Phase("descend", v.object_position, OPEN, tolerance=0.015),
            Phase("grasp", v.object_position, CLOSED, tolerance=1.0, hold_steps=8),
            Phase("lift", lambda o: np.r_[v.object_position(o)[:2], self.CARRY_HEIGHT], CLOSED, tolerance=0.03),
            Phase("carry", lambda o: over_target, CLOSED, tolerance=0.03),
            Phase("lower", lambda o: np.r_[self.TARGET_XY, self.RELEASE_HEIGHT], CLOSED, tolerance=0.04),
            Phase("release", lambda o: np.r_[self.TARGET_XY, self.RELEASE_HEIGHT], OPEN, tolerance=1.0, hold_steps=6),
            Phase("retreat", lambda o: over_target, OPEN, max_steps=1000),
        ]


class NutAssemblySquareExpert(PhaseExpert):
    """NutAssemblySquare: grasp the square nut by its handle with the fingers across it, lift it above the
    square peg, turn it square to the peg, then lower it until it rests around the peg's base."""

    HANDLE_OFFSET = np.array([0.054, 0.0, 0.0])  # m, the handle in the nut's frame (robosuite's square-nut.xml)
    PEG_XY = np.array([0.23, 0.1])  # m, peg1 in robosuite's pegs_arena.xml; tests check it against the env
    CARRY_HEIGHT = 1.0  # m, world z: the nut (held at its own height) clears the peg's top at 0.95
    ALIGN_HEIGHT = 0.975  # m: the nut's underside (1 cm below its centre) just above the peg's top
    FINGER_YAW = np.pi / 2  # rad, the fingers close across the eef frame's x axis; the handle runs along the nut's x

    def handle_position(self, obs: np.ndarray) -> np.ndarray:
        return self.view.object_position(obs) + self.view.object_rotation(obs) @ self.HANDLE_OFFSET

    @staticmethod
    def squaring_turn(nut_yaw: float) -> float:
        """The wrist turn (rad) that squares the held nut to the axis-aligned peg with its handle not pointing
        away from the robot (+x): with the hand beyond the peg the Panda is at the edge of its reach."""
        turns = [wrap_angle(target - nut_yaw) for target in (np.pi / 2, np.pi, -np.pi / 2)]
        return min(turns, key=abs)

    def phases(self) -> list[Phase]:
        v = self.view
        nut_yaw = lambda o: yaw_of(v.object_rotation(o))  # noqa: E731
        grip_yaw = lambda o: self.aligned_yaw(o, nut_yaw(o) + self.FINGER_YAW, np.pi)  # noqa: E731
        square_yaw = lambda o: self.start_yaw_offset(o) + self.squaring_turn(nut_yaw(o))  # noqa: E731
        nut_over_peg = lambda o, z: np.r_[self.PEG_XY + v.eef_position(o)[:2] - v.object_position(o)[:2], z]  # noqa: E731
        return [
            Phase("approach", lambda o: self.handle_position(o) + [0.0, 0.0, TABLE_CLEARANCE], OPEN, yaw=grip_yaw,
                  tolerance=0.005, hold_steps=3),
            Phase("descend", lambda o: self.handle_position(o) + [0.0, 0.0, 0.005], OPEN, yaw=grip_yaw, tolerance=0.008),
            Phase("grasp", self.handle_position, CLOSED, yaw=grip_yaw, tolerance=1.0, hold_steps=8),
            Phase("lift", lambda o: np.r_[v.eef_position(o)[:2], self.CARRY_HEIGHT], CLOSED, yaw=square_yaw,
                  tolerance=0.02),
            Phase("carry", lambda o: nut_over_peg(o, self.CARRY_HEIGHT), CLOSED, yaw=square_yaw, tolerance=0.01),
            # the hole leaves 7 mm around the peg: line up just above its top before going down
            Phase("align", lambda o: nut_over_peg(o, self.ALIGN_HEIGHT), CLOSED, yaw=square_yaw, tolerance=0.003,
                  hold_steps=3),
            # let go just above the peg's top: the nut levels out and slides down. Lowering it while held by
            # the handle left it tilted on the peg's edge: 7 of 8 trial episodes failed that way, 2 of 8 dropping it
            Phase("release", lambda o: nut_over_peg(o, self.ALIGN_HEIGHT), OPEN, yaw=square_yaw, tolerance=1.0,
                  hold_steps=6),
            # straight up, the wrist kept as it is: turning it back near the nut knocked it off the peg
            Phase("retreat", lambda o: np.r_[v.eef_position(o)[:2], self.CARRY_HEIGHT], OPEN, yaw=self.start_yaw_offset,
                  max_steps=1000),
        ]


class JointPositionExpert:
    """A phase expert acting on absolute joint targets: (7 joint positions in rad, gripper), the JOINT_POSITION action.

    Each step the OSC_POSE action (dx, dy, dz, dax, day, daz, gripper), in units of a full 5 cm / 0.5 rad step,
    becomes joint targets q + dq, where dq moves the end effector by that displacement at the observed joint
    positions q; targets are clipped to the joint limits and the gripper command is passed through.
    """

    def __init__(self, osc_expert: PhaseExpert, kinematics: ArmKinematics, obs_names: Sequence[str],
                 joint_names: Sequence[str], joint_lower: np.ndarray, joint_upper: np.ndarray) -> None:
        self.osc_expert = osc_expert
        self.kinematics = kinematics
        names = list(obs_names)
        self._joint_positions = np.array([names.index(f"{joint}.pos") for joint in joint_names])
        self.joint_lower, self.joint_upper = np.asarray(joint_lower), np.asarray(joint_upper)
        self._step_scale = np.r_[np.full(3, POSITION_STEP), np.full(3, ROTATION_STEP)]

    def reset(self, obs: np.ndarray, rng: np.random.Generator) -> None:
        self.osc_expert.reset(obs, rng)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """(8,) float32: joint targets (rad) then the gripper command (-1 open ... 1 closed)."""
        osc_action = self.osc_expert.act(obs).astype(np.float64)
        joint_positions = obs[self._joint_positions].astype(np.float64)
        joint_step = self.kinematics.joint_step(joint_positions, osc_action[:6] * self._step_scale)
        targets = np.clip(joint_positions + joint_step, self.joint_lower, self.joint_upper)
        return np.r_[targets, osc_action[6]].astype(np.float32)
