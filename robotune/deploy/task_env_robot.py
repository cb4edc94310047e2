"""A task environment seen as a robot: named joint signals out, joint targets in, seeded episodes.

Shared by `SteppedEnvTransport` (the runner steps it directly) and the ROS 2 simulator node
(`python -m robotune.deploy.ros.simulator_driver`), so both paths run the very same episodes and scoring.
Signals are read from the environment's observation by `TaskSpec.obs_names`: "<joint>.pos" and
"<joint>.vel" become joint readings, every other "<key>.<field>" an array signal (the goal).
No ROS import here.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from robotune.core.spec import RobotSpec, TaskSpec
from robotune.deploy.observation import JOINT_FIELDS
from robotune.deploy.safety import command_channels, gripper_idle


@dataclass
class EpisodeResult:
    episode: int
    seed: int
    success: bool
    steps: int


class TaskEnvRobot:
    """Episodes of a Gymnasium task env, driven one joint-target command per control step.

    Success follows the evaluation convention: an episode succeeds if `info["is_success"]` was true
    on any step; it ends on termination or truncation. Commands (the joints, then the gripper if the
    robot has one: the task's action) are checked like a careful driver would: non-finite or
    wrong-length commands are ignored (the previous target is held) and counted; targets outside
    the limits are counted and clipped.
    """

    def __init__(self, env: gym.Env, task: TaskSpec, robot: RobotSpec, seed: int = 0, episodes: int = 1) -> None:
        self.env = env
        self.task = task
        self.robot = robot
        self.base_seed = seed
        self.episodes = episodes
        self.episode = -1
        self.steps = 0
        self.success = False
        self.done = False
        self.results: list[EpisodeResult] = []
        self.invalid_commands = 0
        self.commands_outside_limits = 0
        self.max_limit_violation = 0.0
        self.obs = np.zeros(task.obs_dim)
        self.target: np.ndarray | None = None
        _, self._command_lower, self._command_upper = command_channels(robot)  # the joints', then the gripper's
        self._joint_index: dict[str, dict[str, int]] = {name: {} for name in robot.joint_names}
        self._array_index: dict[str, list[tuple[str, int]]] = {}
        for i, obs_name in enumerate(task.obs_names):
            source, _, fld = obs_name.rpartition(".")
            if source in self._joint_index and fld in JOINT_FIELDS:
                self._joint_index[source][JOINT_FIELDS[fld]] = i
            else:
                self._array_index.setdefault(source, []).append((fld, i))
        missing = [n for n, idx in self._joint_index.items() if "position" not in idx]
        if missing:
            raise ValueError(f"task '{task.name}' observes no position for joints {missing}; cannot simulate a JointState")

    @property
    def finished(self) -> bool:
        return len(self.results) >= self.episodes

    def reset(self) -> None:
        """Start the next episode with seed base_seed + episode index."""
        self.episode += 1
        self.obs, _ = self.env.reset(seed=self.base_seed + self.episode)
        self.obs = np.asarray(self.obs, dtype=np.float64)
        self.steps, self.success, self.done = 0, False, False
        gripper = [gripper_idle(self.robot.gripper)] if self.robot.gripper else []
        self.target = np.append(self.joint_positions(), gripper)

    def step(self, command: np.ndarray) -> bool:
        """Apply one control step of `command` (robot joint order); True when the episode just ended."""
        command = np.asarray(command, dtype=np.float64)
        lower, upper = self._command_lower, self._command_upper
        if command.shape != lower.shape or not np.all(np.isfinite(command)):
            self.invalid_commands += 1
        else:
            violation = float(np.max(np.maximum(lower - command, command - upper)))
            if violation > 1e-9:
                self.commands_outside_limits += 1
                self.max_limit_violation = max(self.max_limit_violation, violation)
            self.target = np.clip(command, lower, upper)
        obs, _, terminated, truncated, info = self.env.step(self.target.astype(np.float32))
        self.obs = np.asarray(obs, dtype=np.float64)
        self.steps += 1
        self.success = self.success or bool(info.get("is_success", False))
        self.done = bool(terminated or truncated)
        if self.done:
            self.results.append(EpisodeResult(self.episode, self.base_seed + self.episode, self.success, self.steps))
        return self.done

    # -- named signals -----------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        return np.array([self.obs[self._joint_index[n]["position"]] for n in self.robot.joint_names])

    def joint_velocities(self) -> np.ndarray:
        return np.array([self.obs[self._joint_index[n]["velocity"]] if "velocity" in self._joint_index[n] else 0.0
                         for n in self.robot.joint_names])

    def arrays(self) -> dict[str, np.ndarray]:
        """Every non-joint signal, e.g. {"goal": [x, y]}, entries in obs_names order."""
        return {key: np.array([self.obs[i] for _, i in entries]) for key, entries in self._array_index.items()}

    def array_fields(self) -> dict[str, tuple[str, ...]]:
        return {key: tuple(f for f, _ in entries) for key, entries in self._array_index.items()}

    def summary(self) -> dict:
        n = len(self.results)
        return {
            "episodes": n,
            "successes": sum(r.success for r in self.results),
            "success_rate": (sum(r.success for r in self.results) / n) if n else 0.0,
            "invalid_commands": self.invalid_commands,
            "commands_outside_limits": self.commands_outside_limits,
            "max_limit_violation": self.max_limit_violation,
            "results": [vars(r) for r in self.results],
        }
