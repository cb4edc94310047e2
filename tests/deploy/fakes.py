"""Small stand-ins for the deploy tests: a 2-joint arm spec, a numpy env and goal-reading policies.

The env mimics the built-in planar arm's interface (obs = joint pos, joint vel, goal; action =
absolute joint targets) with first-order dynamics, so the deploy layer is tested without MuJoCo.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import gymnasium as gym
import numpy as np
import torch

from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy, PolicyConfig
from robotune.core.spec import JointSpec, RobotSpec, TaskSpec

ARM = RobotSpec(
    name="test_arm",
    joints=(JointSpec("shoulder", -2.0, 2.0, 3.0), JointSpec("elbow", -2.5, 2.5, 3.0)),
    control_rate_hz=20.0,
)
TASK = TaskSpec(
    name="test_reach",
    obs_names=("shoulder.pos", "elbow.pos", "shoulder.vel", "elbow.vel", "goal.x", "goal.y"),
    action_low=(-2.0, -2.5),
    action_high=(2.0, 2.5),
    control_rate_hz=20.0,
    max_episode_steps=40,
    robot=ARM,
)
# The arm with a hand: one more commanded value after the joints. At 50 Hz its command moves at most
# 10 / 50 = 0.2 per tick, so crossing [-1, 1] takes 10 ticks.
HAND = JointSpec("hand", -1.0, 1.0, max_velocity=10.0)
ARM_WITH_HAND = replace(ARM, gripper=HAND)
TASK_WITH_HAND = replace(TASK, action_low=(*TASK.action_low, HAND.lower), action_high=(*TASK.action_high, HAND.upper),
                         robot=ARM_WITH_HAND)


class FirstOrderArmEnv(gym.Env):
    """Joints move towards the target at most max_velocity/rate per step; the goal is a joint-space point."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (6,), np.float32)
    action_space = gym.spaces.Box(np.array(TASK.action_low, np.float32), np.array(TASK.action_high, np.float32))

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.q = self.np_random.uniform(-0.5, 0.5, 2)
        self.dq = np.zeros(2)
        self.goal = self.np_random.uniform(-1.5, 1.5, 2)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.concatenate([self.q, self.dq, self.goal]).astype(np.float32)

    def step(self, action):
        step = np.clip(np.asarray(action, np.float64) - self.q, -3.0 / 20, 3.0 / 20)
        self.q = self.q + step
        self.dq = step * 20
        self.t += 1
        success = bool(np.all(np.abs(self.q - self.goal) < 0.05))
        return self._obs(), 0.0, success, self.t >= TASK.max_episode_steps, {"is_success": success}


@dataclass
class GoalPolicyConfig(PolicyConfig):
    obs_horizon: int = 2
    horizon: int = 8
    act_steps: int = 4


class GoalPolicy(Policy):
    """Every action of the chunk is the goal read from the newest observation (plus `offset`).

    `nan_after` makes the policy emit NaN chunks after that many calls, to test the NaN guard.
    `hand_gain`: a policy of TASK_WITH_HAND, whose hand is asked for hand_gain * goal.x.
    """

    def __init__(self, offset: float = 0.0, nan_after: int | None = None, delay_s: float = 0.0,
                 hand_gain: float | None = None) -> None:
        task = TASK if hand_gain is None else TASK_WITH_HAND
        super().__init__(GoalPolicyConfig(), task, Normalizer.identity(6),
                         Normalizer(np.array(task.action_low), np.array(task.action_high)))
        self.hand_gain = hand_gain
        self.offset = offset
        self.nan_after = nan_after
        self.delay_s = delay_s
        self.calls = 0

    def compute_loss(self, obs_norm, action_norm, generator):
        raise NotImplementedError

    def sample_chunk_norm(self, obs_norm, deterministic, generator):
        raise NotImplementedError

    @torch.inference_mode()
    def predict_chunk(self, obs, deterministic=False, generator=None):
        self.calls += 1
        if self.delay_s:
            import time

            time.sleep(self.delay_s)
        goal = obs[:, -1, 4:6] + self.offset
        if self.hand_gain is not None:
            goal = torch.cat([goal, self.hand_gain * obs[:, -1, 4:5]], dim=-1)
        chunk = goal[:, None, :].repeat(1, self.config.horizon, 1)  # (1, horizon, action_dim)
        if self.nan_after is not None and self.calls > self.nan_after:
            chunk = torch.full_like(chunk, float("nan"))
        return chunk


@dataclass
class ExpertPolicyConfig(PolicyConfig):
    obs_horizon: int = 1
    horizon: int = 2
    act_steps: int = 1


class ExpertPolicy(Policy):
    """reach_around's scripted expert behind the Policy interface: one expert step per chunk.

    Lets deploy tests drive the real MuJoCo task without a trained checkpoint. The expert is open
    loop in time, so each chunk is its next action, repeated to cover the planner's lead tick.
    """

    def __init__(self, side: str = "outer") -> None:
        from robotune.robots.reach_around.task import ReachAroundTask

        task = ReachAroundTask()
        spec = task.spec
        super().__init__(ExpertPolicyConfig(), spec, Normalizer.identity(spec.obs_dim), Normalizer(np.array(spec.action_low), np.array(spec.action_high)))
        self.expert = task.make_expert(side=side)
        self.fresh = True

    def compute_loss(self, obs_norm, action_norm, generator):
        raise NotImplementedError

    def sample_chunk_norm(self, obs_norm, deterministic, generator):
        raise NotImplementedError

    def reset(self) -> None:
        self.fresh = True

    @torch.inference_mode()
    def predict_chunk(self, obs, deterministic=False, generator=None):
        newest = obs[0, -1].numpy()
        if self.fresh:
            self.expert.reset(newest, np.random.default_rng(0))
            self.fresh = False
        action = torch.from_numpy(self.expert.act(newest))
        return action[None, None, :].repeat(1, self.config.horizon, 1)
