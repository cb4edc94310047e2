"""A robosuite 1.5 environment behind Gymnasium's API, with a flat, named low-dimensional observation.

robosuite returns a dict of arrays; `ObservationLayout` picks the keys a task declares and names every
entry, so `TaskSpec.obs_names` says what each column of the flat float32 vector is. robosuite is
imported here, on the first environment, never when the plugin registers.

Two controllers, chosen by the task's `controller` field:
- "OSC_POSE" (robosuite's BASIC default): action = (dx, dy, dz, dax, day, daz, gripper) in [-1, 1];
  each step moves the end effector by up to 5 cm and rotates it by up to 0.5 rad (axis-angle, base frame).
- "JOINT_POSITION": action = 7 absolute joint targets (rad, within the Panda's limits) + gripper in [-1, 1].
The gripper closes for positive and opens for negative commands.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from robotune.robots.robosuite.robot import CONTROL_RATE_HZ, JOINT_NAMES, panda_robot_spec

if TYPE_CHECKING:
    from robotune.rollout.video import OffscreenRenderer

CONTROLLERS = ("OSC_POSE", "JOINT_POSITION")
SCENE_SEED = 0
ROBOT_PREFIX = "robot0_"


@dataclass(frozen=True)
class ObservationKey:
    """One robosuite observation key and the names of its entries, in order."""

    key: str
    entry_names: tuple[str, ...]


def proprioception_keys() -> tuple[ObservationKey, ...]:
    """The Panda's own state: joints (rad, rad/s), end effector (m; quaternion x, y, z, w as robosuite
    stores it) and the two finger positions (m)."""
    return (
        ObservationKey(f"{ROBOT_PREFIX}joint_pos", tuple(f"{joint}.pos" for joint in JOINT_NAMES)),
        ObservationKey(f"{ROBOT_PREFIX}joint_vel", tuple(f"{joint}.vel" for joint in JOINT_NAMES)),
        ObservationKey(f"{ROBOT_PREFIX}eef_pos", ("eef.x", "eef.y", "eef.z")),
        ObservationKey(f"{ROBOT_PREFIX}eef_quat", ("eef.qx", "eef.qy", "eef.qz", "eef.qw")),
        ObservationKey(f"{ROBOT_PREFIX}gripper_qpos", ("gripper.left", "gripper.right")),
    )


def object_keys(robosuite_name: str, name: str) -> tuple[ObservationKey, ...]:
    """An object's world position (m) and orientation (quaternion x, y, z, w) as `<name>.x` ... `<name>.qw`."""
    return (
        ObservationKey(f"{robosuite_name}_pos", (f"{name}.x", f"{name}.y", f"{name}.z")),
        ObservationKey(f"{robosuite_name}_quat", (f"{name}.qx", f"{name}.qy", f"{name}.qz", f"{name}.qw")),
    )


@dataclass(frozen=True)
class ObservationLayout:
    """Which robosuite keys make the flat observation, in order."""

    keys: tuple[ObservationKey, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for key in self.keys for name in key.entry_names)

    def flatten(self, observation: dict[str, np.ndarray], env_name: str) -> np.ndarray:
        """(obs_dim,) float32 from robosuite's observation dict; a missing key or size is named."""
        parts = []
        for key in self.keys:
            if key.key not in observation:
                raise KeyError(f"robosuite {env_name} has no observation '{key.key}'; it has {sorted(observation)}")
            value = np.asarray(observation[key.key], dtype=np.float32).reshape(-1)
            if value.shape != (len(key.entry_names),):
                raise ValueError(
                    f"robosuite {env_name} observation '{key.key}' has {value.size} entries, "
                    f"expected {len(key.entry_names)} ({', '.join(key.entry_names)})"
                )
            parts.append(value)
        return np.concatenate(parts)


def import_robosuite() -> Any:
    """robosuite, or a RuntimeError that says how to install it."""
    try:
        import robosuite
    except ImportError as exc:
        raise RuntimeError(
            f"robosuite tasks need robosuite 1.5 ({exc}); scripts/setup.sh installs it "
            "(pip install --no-deps 'robosuite>=1.5.2,<1.6')"
        ) from exc
    return robosuite


def controller_config(controller: str) -> dict[str, Any]:
    """robosuite's BASIC composite controller, with the arm on OSC_POSE (its default) or absolute joint targets."""
    if controller not in CONTROLLERS:
        raise ValueError(f"task.controller must be one of {CONTROLLERS}, got '{controller}'")
    import_robosuite()
    from robosuite.controllers import load_composite_controller_config, load_part_controller_config

    config = load_composite_controller_config(controller="BASIC")
    if controller == "JOINT_POSITION":
        arm = config["body_parts"]["right"]
        joint_position = load_part_controller_config(default_controller="JOINT_POSITION")
        robot = panda_robot_spec()
        # absolute targets: the action is the goal itself, and robosuite's action bounds become the joint limits
        joint_position.update(input_type="absolute", input_min=robot.lower.tolist(), input_max=robot.upper.tolist())
        joint_position["output_min"], joint_position["output_max"] = joint_position["input_min"], joint_position["input_max"]
        joint_position["gripper"] = copy.deepcopy(arm["gripper"])
        config["body_parts"]["right"] = joint_position
    return config


class RobosuiteEnv(gym.Env):
    """One robosuite environment (`env_name`, e.g. "Lift") with a Panda, headless, at 20 Hz.

    `info["is_success"]` is robosuite's `_check_success()` after every step. With `terminate_on_success`
    an episode ends at success (as demonstrations usually do); it is truncated after `max_episode_steps`.
    Reward is robosuite's: sparse (1 on success) or, with `reward_shaping`, its staged dense reward.
    With `render_mode="rgb_array"`, `render()` returns (240, 320, 3) uint8 frames from the "agentview" camera.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_RATE_HZ}

    def __init__(
        self,
        env_name: str,
        layout: ObservationLayout,
        controller: str = "OSC_POSE",
        max_episode_steps: int = 500,
        reward_shaping: bool = False,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"{env_name}: render_mode must be None or 'rgb_array', got {render_mode!r}")
        robosuite = import_robosuite()
        self.env_name, self.layout, self.render_mode = env_name, layout, render_mode
        self.max_episode_steps, self.terminate_on_success = max_episode_steps, terminate_on_success
        self.suite_env = robosuite.make(
            env_name,
            robots="Panda",
            controller_configs=controller_config(controller),
            has_renderer=False,
            has_offscreen_renderer=False,  # frames come from OffscreenRenderer, which picks a headless GL itself
            use_camera_obs=False,
            use_object_obs=True,
            reward_shaping=reward_shaping,
            control_freq=CONTROL_RATE_HZ,
            horizon=max_episode_steps,
            ignore_done=True,  # this wrapper ends episodes itself
            hard_reset=False,  # a hard reset recompiles the model: 1 s per episode instead of ~10 ms
            # robosuite draws some of the scene once, when it builds it (Lift's cube size, 20-22 mm), from
            # `env.rng`, unseeded by default: seed it, so every environment of a task, in any process, has the same
            # scene, and a recorded episode replays in another one. Episodes reseed `rng` at reset (below).
            seed=SCENE_SEED,
        )
        low, high = self.suite_env.action_spec
        self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(len(layout.names),), dtype=np.float32)
        self._steps = 0
        self._renderer: OffscreenRenderer | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            # robosuite draws object placements and the arm's start noise from `env.rng`, a Generator that its
            # placement samplers hold a reference to: reseed it in place so they all see the new stream.
            self.suite_env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        observation = self.suite_env.reset()
        self._steps = 0
        return self.layout.flatten(observation, self.env_name), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        observation, reward, _, _ = self.suite_env.step(np.asarray(action, dtype=np.float64))
        self._steps += 1
        success = bool(self.suite_env._check_success())
        terminated = success and self.terminate_on_success
        truncated = self._steps >= self.max_episode_steps and not terminated
        return self.layout.flatten(observation, self.env_name), float(reward), terminated, truncated, {"is_success": success}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        if self._renderer is None:
            from robotune.rollout.video import OffscreenRenderer

            # robosuite keeps collision geoms in group 0 and what it shows in group 1
            self._renderer = OffscreenRenderer(
                self.suite_env.sim.model._model, camera="agentview", hidden_geom_groups=(0,)
            )
        return self._renderer.render(self.suite_env.sim.data._data)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.suite_env.close()
