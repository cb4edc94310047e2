"""ChunkController: open-loop execution of act_steps, and ACT-style temporal ensembling."""

import math

import numpy as np
import torch

from robotune.rollout.chunking import ChunkController
from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy, PolicyConfig
from robotune.core.spec import TaskSpec


class ScriptedPolicy(Policy):
    """Returns queued chunks in order (normalised units = raw units: identity normalisers)."""

    def __init__(self, chunks: list[np.ndarray], horizon: int, act_steps: int = 1) -> None:
        spec = TaskSpec("scripted", ("x",), (-1.0,), (1.0,), 10.0, 100)
        super().__init__(PolicyConfig(obs_horizon=1, horizon=horizon, act_steps=act_steps), spec, Normalizer.identity(1), Normalizer.identity(1))
        self.chunks = list(chunks)
        self.calls = 0

    def compute_loss(self, obs_norm, action_norm, generator):
        raise NotImplementedError

    def sample_chunk_norm(self, obs_norm, deterministic, generator):
        chunk = torch.as_tensor(self.chunks[self.calls], dtype=torch.float32).reshape(1, -1, 1)
        self.calls += 1
        return chunk.expand(obs_norm.shape[0], -1, -1)


def test_constant_chunks_give_the_constant_with_ensembling():
    policy = ScriptedPolicy([np.full(4, 0.3)] * 10, horizon=4)
    controller = ChunkController(policy, ensemble_decay=0.5)
    actions = [controller.act(np.zeros(1))[0, 0] for _ in range(10)]
    np.testing.assert_allclose(actions, 0.3, rtol=1e-6)


def test_two_overlapping_chunks_are_weighted_towards_the_older():
    """Step 1 has predictions c0[1] (older, weight 1) and c1[0] (newer, weight exp(-decay)), as in ACT."""
    decay = 0.7
    c0, c1 = np.array([0.1, 0.5, 0.9]), np.array([-0.4, -0.2, 0.0])
    policy = ScriptedPolicy([c0, c1], horizon=3)
    controller = ChunkController(policy, ensemble_decay=decay)
    first = controller.act(np.zeros(1))[0, 0]
    second = controller.act(np.zeros(1))[0, 0]
    w_new = math.exp(-decay)
    assert first == np.float32(0.1)
    np.testing.assert_allclose(second, (1.0 * 0.5 + w_new * -0.4) / (1.0 + w_new), rtol=1e-6)


def test_without_ensembling_act_steps_run_open_loop():
    policy = ScriptedPolicy([np.array([1.0, 2.0, 3.0, 4.0]) / 10, np.array([5.0, 6.0, 7.0, 8.0]) / 10], horizon=4, act_steps=2)
    controller = ChunkController(policy)
    actions = [controller.act(np.zeros(1))[0, 0] for _ in range(4)]
    np.testing.assert_allclose(actions, [0.1, 0.2, 0.5, 0.6], rtol=1e-6)
    assert policy.calls == 2
