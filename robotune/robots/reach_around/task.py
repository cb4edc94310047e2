"""`reach_around`: move a planar arm's fingertip to a goal behind a post, passing either side.

The built-in default task. Demonstrations are bimodal by construction: the expert passes the post
on the inner side (near the base) or the outer side with equal probability, and the average of the
two ways runs into the post. A unimodal (Gaussian/MSE) policy that averages them fails; a policy that
can represent both modes succeeds.

Observation (float32), named in `TaskSpec.obs_names`:
    [shoulder.pos, elbow.pos, shoulder.vel, elbow.vel, goal.x, goal.y]   rad, rad/s, m
Action: absolute joint position targets (shoulder, elbow) in rad, as a ros2_control forward
position controller takes them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import mujoco
import numpy as np

from robotune.core.registry import register
from robotune.core.spec import TaskSpec
from robotune.core.task import Task, TaskConfig
from robotune.robots.reach_around.robot import (
    CONTROL_RATE_HZ,
    MAX_JOINT_VELOCITY,
    PlanarArmKinematics,
    load_model,
    robot_spec,
)

if TYPE_CHECKING:
    from robotune.rollout.video import OffscreenRenderer

OBS_NAMES = ("shoulder.pos", "elbow.pos", "shoulder.vel", "elbow.vel", "goal.x", "goal.y")
GOAL_SLICE = slice(4, 6)
NOMINAL_START_XY = np.array([0.55, -0.3])  # fingertip start; the post sits halfway to the goal
NOMINAL_GOAL_XY = np.array([0.55, 0.3])
SUCCESS_RADIUS = 0.04  # m, fingertip-to-goal distance that counts as reached
SUCCESS_BONUS = 1.0


@dataclass
class ReachAroundConfig(TaskConfig):
    max_episode_steps: int = 100  # at 20 Hz; the expert needs about half of this
    goal_noise: float = 0.04  # m, goal drawn uniformly within +-goal_noise of nominal, per axis
    start_noise: float = 0.05  # rad, start joints drawn uniformly within +-start_noise of nominal
    # Domain randomisation, for policies that must survive a model that is not quite right. Each
    # (low, high) scale multiplies the MJCF's value by a factor drawn uniformly per episode (per body,
    # geom or actuator) at reset, from the episode's seed and after the start and goal, so a seed keeps
    # its start and goal. All are off by default: (1, 1), 0 and (0, 0) leave the task as it was.
    mass_scale: tuple[float, float] = (1.0, 1.0)  # link masses and inertias
    friction_scale: tuple[float, float] = (1.0, 1.0)  # sliding friction of every geom
    actuator_gain_scale: tuple[float, float] = (1.0, 1.0)  # position actuators' stiffness kp
    observation_noise: float = 0.0  # std of Gaussian noise added to every observation entry, each step
    action_delay_steps: tuple[int, int] = (0, 0)  # control steps between an action and its effect, per episode
    # rad/s: each control step moves the joint targets at most this far times the step's duration towards
    # the action, as the deploy safety layer's rate limit does (the robot's velocity limit), so that RL cannot
    # learn motions the robot will not be allowed to make. 0 applies the action at once.
    max_target_speed: float = MAX_JOINT_VELOCITY
    # rad: std of Gaussian noise on the scripted expert's joint targets, each step, to record imperfect
    # demonstrations on purpose (weak bases for fine-tuning); the recorder keeps the attempts that succeed
    expert_noise: float = 0.0


def _checked_range(field: str, value: Any, minimum: float) -> tuple[float, float]:
    if len(value) != 2 or not minimum <= value[0] <= value[1]:
        raise ValueError(f"task.{field} must be [low, high] with {minimum} <= low <= high, got {list(value)}")
    return float(value[0]), float(value[1])


class DomainRandomization:
    """Draws the `ReachAroundConfig` randomisation per episode and applies it to a model.

    The MJCF's values are kept, so every episode scales from the nominal model, not from the last episode's.
    """

    def __init__(self, config: ReachAroundConfig, model: mujoco.MjModel) -> None:
        self.mass_scale = _checked_range("mass_scale", config.mass_scale, 1e-6)
        self.friction_scale = _checked_range("friction_scale", config.friction_scale, 0.0)
        self.actuator_gain_scale = _checked_range("actuator_gain_scale", config.actuator_gain_scale, 1e-6)
        delay = _checked_range("action_delay_steps", config.action_delay_steps, 0)
        if any(d != int(d) for d in delay):
            raise ValueError(f"task.action_delay_steps must be whole control steps, got {list(config.action_delay_steps)}")
        self.action_delay_steps = (int(delay[0]), int(delay[1]))
        if config.observation_noise < 0:
            raise ValueError(f"task.observation_noise must be >= 0, got {config.observation_noise}")
        self.observation_noise = config.observation_noise
        self.model = model
        self.nominal = {
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "geom_friction": model.geom_friction.copy(),
            "actuator_gainprm": model.actuator_gainprm.copy(),
            "actuator_biasprm": model.actuator_biasprm.copy(),
        }

    @property
    def changes_model(self) -> bool:
        return any(scale != (1.0, 1.0) for scale in (self.mass_scale, self.friction_scale, self.actuator_gain_scale))

    def apply(self, rng: np.random.Generator) -> int:
        """Rescale the model for a new episode; returns the episode's action delay in control steps."""
        if self.changes_model:
            m, nominal = self.model, self.nominal
            mass = rng.uniform(*self.mass_scale, size=m.nbody)
            m.body_mass[:] = nominal["body_mass"] * mass
            m.body_inertia[:] = nominal["body_inertia"] * mass[:, None]  # same shape, scaled density
            m.geom_friction[:, 0] = nominal["geom_friction"][:, 0] * rng.uniform(*self.friction_scale, size=m.ngeom)
            # a MuJoCo position actuator is gain kp * ctrl plus bias -kp * qpos: scale both to keep it a servo
            gain = rng.uniform(*self.actuator_gain_scale, size=m.nu)
            m.actuator_gainprm[:, 0] = nominal["actuator_gainprm"][:, 0] * gain
            m.actuator_biasprm[:, 1] = nominal["actuator_biasprm"][:, 1] * gain
        low, high = self.action_delay_steps
        return int(rng.integers(low, high + 1)) if high > 0 else 0


class ReachAroundEnv(gym.Env):
    """The MuJoCo simulation at the control rate.

    Reward per step: minus the fingertip-to-goal distance (m), plus SUCCESS_BONUS when the goal is
    reached. Touching the post ends the episode and costs the distance times the steps that were
    left, so ending an episode by collision never pays better than staying put.

    `model`, `data` and `substeps` are public so that a joint-level simulator can drive the same MJCF.
    With `render_mode="rgb_array"`, `render()` returns a (240, 320, 3) uint8 top view.
    Domain randomisation (`ReachAroundConfig`, off by default) rescales `model` at every reset; with an
    action delay of k steps, the action given to `step` is applied k control steps later, the arm holding
    its start position until then.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_RATE_HZ}

    def __init__(self, config: ReachAroundConfig, render_mode: str | None = None) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"reach_around: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config
        self.render_mode = render_mode
        self._renderer: OffscreenRenderer | None = None  # made on the first render()
        self.model = load_model()
        self.data = mujoco.MjData(self.model)
        # 2 ms MJCF timestep x 25 = one 50 ms control step
        self.substeps = round(1.0 / (CONTROL_RATE_HZ * self.model.opt.timestep))
        self.kinematics = PlanarArmKinematics(self.model)
        self.max_episode_steps = config.max_episode_steps
        self._fingertip = self.model.site("fingertip").id
        self._collision_pair = (self.model.geom("fingertip").id, self.model.geom("obstacle").id)
        self._goal_mocap = self.model.body("goal").mocapid[0]
        # views into `data` (MuJoCo never reallocates it), read every step without indexing again
        self._fingertip_xy = self.data.site_xpos[self._fingertip, :2]
        self._goal_xy = self.data.mocap_pos[self._goal_mocap, :2]
        self._nominal_start_q = self.kinematics.inverse(NOMINAL_START_XY)

        lower, upper = self.model.jnt_range[:, 0], self.model.jnt_range[:, 1]
        self.action_space = gym.spaces.Box(lower.astype(np.float32), upper.astype(np.float32), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(len(OBS_NAMES),), dtype=np.float32)
        # float32 bounds, as np.clip against the action space's own low/high gave before
        self._action_low, self._action_high = self.action_space.low, self.action_space.high
        self.randomization = DomainRandomization(config, self.model)
        self._pending_actions: deque[np.ndarray] = deque()  # actions given but not yet applied (action delay)
        self._action_delay = 0
        if config.max_target_speed < 0:
            raise ValueError(f"task.max_target_speed must be >= 0 rad/s (0: no limit), got {config.max_target_speed}")
        self._max_target_step = config.max_target_speed / CONTROL_RATE_HZ if config.max_target_speed > 0 else np.inf
        self._steps = 0

    @property
    def goal(self) -> np.ndarray:
        return self.data.mocap_pos[self._goal_mocap, :2].copy()

    def set_goal(self, xy: np.ndarray) -> None:
        """Move the goal (m, world frame) now, e.g. from a deploy-time goal topic."""
        self.data.mocap_pos[self._goal_mocap, :2] = xy

    def fingertip(self) -> np.ndarray:
        return self.data.site_xpos[self._fingertip, :2].copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """`options={"goal": (x, y)}` fixes the goal instead of drawing it."""
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        noise = self.config.start_noise
        q = self._nominal_start_q + self.np_random.uniform(-noise, noise, size=2)
        self.data.qpos[:] = q
        self.data.ctrl[:] = q
        goal_noise = self.np_random.uniform(-self.config.goal_noise, self.config.goal_noise, size=2)
        goal = (options or {}).get("goal", NOMINAL_GOAL_XY + goal_noise)
        self.set_goal(np.asarray(goal, dtype=np.float64))
        self._action_delay = self.randomization.apply(self.np_random)
        self._pending_actions = deque(q.astype(np.float32) for _ in range(self._action_delay))
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        return self._observation(), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._action_delay:
            self._pending_actions.append(np.asarray(action, dtype=np.float32))
            action = self._pending_actions.popleft()
        # np.minimum/np.maximum: the same result as np.clip (NaN included) at a fifth of its call overhead
        target = np.minimum(np.maximum(action, self._action_low), self._action_high)
        previous = self.data.ctrl
        self.data.ctrl[:] = np.minimum(np.maximum(target, previous - self._max_target_step), previous + self._max_target_step)
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        # Collisions are checked once per control step: a position-controlled fingertip that reaches
        # the post keeps pressing on it, so the contact is still there at the end of the step. Positions
        # and contacts are all the step reads, so kinematics and collision stand in for a full mj_forward
        # (the next mj_step recomputes everything from qpos, qvel and ctrl anyway).
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_collision(self.model, self.data)
        self._steps += 1

        offset = self._fingertip_xy - self._goal_xy
        distance = math.sqrt(offset.dot(offset))  # what np.linalg.norm computes, without its dispatch
        collided = self._touches_obstacle()
        success = distance < SUCCESS_RADIUS and not collided
        reward = -distance
        if success:
            reward += SUCCESS_BONUS
        if collided:
            reward -= distance * (self.max_episode_steps - self._steps)
        truncated = self._steps >= self.max_episode_steps and not (success or collided)
        info = {"is_success": success, "collision": collided, "distance": distance}
        return self._observation(), reward, success or collided, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        if self._renderer is None:
            from robotune.rollout.video import OffscreenRenderer  # PyAV and GL only for runs that render

            # looking down at the arm's workspace from above its base, the post in the middle
            self._renderer = OffscreenRenderer(self.model, lookat=(0.4, 0.0, 0.0), distance=1.5, elevation=-70.0)
        return self._renderer.render(self.data)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _touches_obstacle(self) -> bool:
        if self.data.ncon == 0:
            return False
        first, second = self.data.contact.geom.T
        a, b = self._collision_pair
        return bool(np.any(((first == a) & (second == b)) | ((first == b) & (second == a))))

    def _observation(self) -> np.ndarray:
        obs = np.empty(len(OBS_NAMES), dtype=np.float32)
        obs[0:2], obs[2:4], obs[4:6] = self.data.qpos, self.data.qvel, self._goal_xy
        if self.randomization.observation_noise > 0:
            obs += self.np_random.normal(0.0, self.randomization.observation_noise, size=obs.shape).astype(np.float32)
        return obs


class ReachAroundExpert:
    """Follows start -> approach point -> side waypoint -> goal at a fixed speed, through analytic IK.

    The approach point lies on the straight line from the start to the post, `approach_distance`
    short of its centre, and both modes share the path up to it: there the demonstrations split
    into two equally good ways, from identical observation histories. A policy that averages the
    modes keeps going straight and hits the post a few steps later; one that represents both picks
    a side. The side waypoints lie on the line from the base through the post, `waypoint_offset`
    before and after it, so both ways are equally long.
    Unless fixed with `side`, the first reset draws a side at random and each later reset takes the
    other one, so the sides stay balanced and two demonstrations from the same start (see
    `data.demos_per_start`) take both ways. The expert is
    open loop in time after reset: its action depends only on the step count.
    """

    SIDES = ("inner", "outer")

    def __init__(
        self,
        kinematics: PlanarArmKinematics,
        obstacle_xy: np.ndarray,
        control_period: float,
        speed: float = 0.3,
        waypoint_offset: float = 0.22,
        approach_distance: float = 0.19,
        side: str | None = None,
        noise_std: float = 0.0,
    ) -> None:
        if side not in (None, *self.SIDES):
            raise ValueError(f"expert side must be one of {self.SIDES} or None (random), got '{side}'")
        if noise_std < 0:
            raise ValueError(f"task.expert_noise must be >= 0, got {noise_std}")
        self.noise_std = noise_std
        self._rng = np.random.default_rng(0)
        self.kinematics = kinematics
        self.step_length = speed * control_period  # m of path per control step
        radial = obstacle_xy / np.linalg.norm(obstacle_xy)
        self.waypoints = {
            "inner": obstacle_xy - waypoint_offset * radial,
            "outer": obstacle_xy + waypoint_offset * radial,
        }
        self.obstacle_xy = obstacle_xy
        self.approach_distance = approach_distance
        self.fixed_side = side
        self.side = side or "inner"
        self._path = np.zeros((1, 2))
        self._steps = 0
        self._started = False

    def reset(self, obs: np.ndarray, rng: np.random.Generator) -> None:
        self._rng = rng
        if self.fixed_side:
            self.side = self.fixed_side
        elif not self._started:
            self.side = self.SIDES[int(rng.integers(2))]
        else:
            self.side = self.SIDES[1 - self.SIDES.index(self.side)]
        self._started = True
        start = self.kinematics.forward(obs[:2].astype(np.float64))
        to_post = self.obstacle_xy - start
        approach = self.obstacle_xy - self.approach_distance * to_post / np.linalg.norm(to_post)
        self._path = np.stack([start, approach, self.waypoints[self.side], obs[GOAL_SLICE].astype(np.float64)])
        self._steps = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        self._steps += 1
        target = self.kinematics.inverse(self._point_along_path(self._steps * self.step_length))
        if self.noise_std:
            target = target + self._rng.normal(0.0, self.noise_std, size=target.shape)
        return target.astype(np.float32)

    def _point_along_path(self, distance: float) -> np.ndarray:
        for a, b in zip(self._path[:-1], self._path[1:]):
            segment = float(np.linalg.norm(b - a))
            if distance <= segment:
                return a + (b - a) * (distance / segment)
            distance -= segment
        return self._path[-1]


@register("task", "reach_around")
class ReachAroundTask(Task):
    """The built-in default task; see the module docstring."""

    config_class = ReachAroundConfig
    info_metrics = {"distance": "final", "collision": "max"}  # where each episode ended, and whether it hit the post

    def __init__(self, config: ReachAroundConfig | None = None) -> None:
        super().__init__(config or ReachAroundConfig())
        self._model = load_model()

    @property
    def spec(self) -> TaskSpec:
        robot = robot_spec(self._model)
        return TaskSpec(
            name="reach_around",
            obs_names=OBS_NAMES,
            action_low=tuple(float(x) for x in robot.lower),
            action_high=tuple(float(x) for x in robot.upper),
            control_rate_hz=CONTROL_RATE_HZ,
            max_episode_steps=self.config.max_episode_steps,
            robot=robot,
        )

    def make_env(self, render_mode: str | None = None) -> ReachAroundEnv:
        return ReachAroundEnv(self.config, render_mode=render_mode)

    def make_expert(self, side: str | None = None) -> ReachAroundExpert:
        """`side="inner"` or `"outer"` fixes the mode; None draws it per episode."""
        return ReachAroundExpert(
            PlanarArmKinematics(self._model),
            obstacle_xy=self._model.geom("obstacle").pos[:2].copy(),
            control_period=1.0 / CONTROL_RATE_HZ,
            side=side,
            noise_std=self.config.expert_noise,
        )
