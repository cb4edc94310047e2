"""`algo.compile=true` changes how PPO's update runs, not what it computes: the minibatch loss compiled
by torch.compile gives the eager path's parameters and metrics."""

import pytest
import torch

from robotune.plugins.ppo import PPO, PPOConfig
from tests.helpers import make_context
from tests.plugins.test_rl_engines import make_policy
from tests.rollout.toy_envs import TargetTask

pytestmark = pytest.mark.slow  # inductor compiles the loss once: ~10 s on one core


def parameters_of(*modules: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for module in modules for p in module.parameters()])


def test_compiled_ppo_iteration_equals_the_eager_one(tmp_path):
    learned = {}
    for compiled in (False, True):
        task = TargetTask()
        context = make_context(make_policy(task, init_std=0.5), task=task, work_dir=tmp_path, critic_overrides={"hidden_dims": (32,)})
        ppo = PPO(PPOConfig(steps=1, num_envs=2, rollout_steps=16, epochs=2, batch_size=8, lr=3e-3, critic_lr=3e-3, compile=compiled), context)
        metrics = ppo.step()
        ppo.close()
        learned[compiled] = parameters_of(ppo.policy, ppo.critic), metrics
    torch.testing.assert_close(learned[True][0], learned[False][0], rtol=0, atol=1e-5)
    assert learned[True][1]["policy_loss"] == pytest.approx(learned[False][1]["policy_loss"], abs=1e-5)
