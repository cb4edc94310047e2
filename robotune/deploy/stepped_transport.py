"""`transport=sim`: the runner steps a MuJoCo task environment directly, with no middleware.

Time advances only when the runner sends a command (one control step each), so the runner ticks
as fast as it can and an episode takes as long as its inference. Planning still goes through the
ahead-of-time planner, which waits for a running plan instead of holding: the actions are the ones
a real-time deployment with the same `lead_ticks` would send if inference met its budget.
"""

from __future__ import annotations

import time

import numpy as np

from robotune.deploy.observation import ArrayTopic, JointReading, ObservationSnapshot
from robotune.deploy.safety import command_channels
from robotune.deploy.task_env_robot import TaskEnvRobot
from robotune.deploy.transport import Transport


class SteppedEnvTransport(Transport):
    stepped = True

    def __init__(self, robot: TaskEnvRobot) -> None:
        self.robot = robot
        self._stamp = 0

    @property
    def command_joints(self) -> tuple[str, ...]:
        return command_channels(self.robot.robot)[0]

    def start(self) -> None:
        if self.robot.episode < 0:
            self.robot.reset()

    def observation_topics(self) -> dict[str, ArrayTopic]:
        """Array sources named like the ROS simulator's topics (`/<key>`), for the observation layout."""
        return {k: ArrayTopic(k, f"/{k}", fields) for k, fields in self.robot.array_fields().items()}

    def snapshot(self) -> ObservationSnapshot:
        now = time.monotonic()
        positions, velocities = self.robot.joint_positions(), self.robot.joint_velocities()
        joints = {
            name: JointReading(float(p), float(v), now)
            for name, p, v in zip(self.robot.robot.joint_names, positions, velocities)
        }
        arrays = {k: (v, now) for k, v in self.robot.arrays().items()}
        return ObservationSnapshot(joints, arrays, self._stamp, self.robot.episode)

    def send(self, command: np.ndarray, source_stamp_ns: int) -> None:
        if self.robot.finished:
            return
        if self.robot.step(command) and not self.robot.finished:
            self.robot.reset()
        self._stamp += 1

    def estop_requested(self) -> bool:
        return False

    def diagnostics(self) -> dict:
        return {"sim": {k: v for k, v in self.robot.summary().items() if k != "results"}}

    def close(self) -> None:
        pass
