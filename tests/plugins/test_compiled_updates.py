"""`algo.compile=true` changes how PPO's update runs, not what it computes: the minibatch loss and the clipped Adam
step compiled by torch.compile give the eager path's parameters and metrics, also after a checkpoint is loaded."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from robotune.core.checkpoint import flatten_state, unflatten_state
from robotune.plugins.ppo import PPO, PPOConfig
from tests.helpers import make_context
from tests.plugins.test_rl_engines import make_policy
from tests.rollout.toy_envs import TargetTask

pytestmark = pytest.mark.slow  # inductor compiles the loss and the step: ~10 s on one core


def make_ppo(compiled: bool, work_dir, seed: int = 0, **config) -> PPO:
    task = TargetTask()
    context = make_context(make_policy(task, init_std=0.5), task=task, work_dir=work_dir, seed=seed, critic_overrides={"hidden_dims": (32,)})
    return PPO(PPOConfig(steps=1, num_envs=2, rollout_steps=16, epochs=2, batch_size=8, lr=3e-3, critic_lr=3e-3, compile=compiled, **config), context)


def parameters_of(ppo: PPO) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for module in (ppo.policy, ppo.critic) for p in module.parameters()])


def through_checkpoint_files(state: dict, tmp_path) -> dict:
    """The training state as a resumed run reads it back: safetensors and JSON (robotune/core/checkpoint.py)."""
    tensors, tree = flatten_state(state)
    save_file(tensors, str(tmp_path / "training_state.safetensors"))
    return unflatten_state(load_file(str(tmp_path / "training_state.safetensors")), tree)


def test_compiled_ppo_iterations_equal_the_eager_ones(tmp_path):
    """A critic-only iteration (no policy gradients: both compiled functions recompile after it), then a full one."""
    learned = {}
    for compiled in (False, True):
        ppo = make_ppo(compiled, tmp_path, critic_warmup_iterations=1)
        for _ in range(2):
            metrics = ppo.step()
        ppo.close()
        learned[compiled] = parameters_of(ppo), metrics
    torch.testing.assert_close(learned[True][0], learned[False][0], rtol=0, atol=2e-6)
    for name in ("policy_loss", "value_loss", "approx_kl"):
        assert learned[True][1][name] == pytest.approx(learned[False][1][name], rel=2e-6, abs=2e-6)


def test_compiled_step_updates_a_loaded_optimizer_state(tmp_path):
    """Loading a checkpoint replaces the optimizer's state tensors after the step was compiled against the old
    ones: the compiled step must move on from the loaded moments and step count, as the eager one does."""
    source = make_ppo(False, tmp_path, seed=1)
    for _ in range(2):
        source.step()
    source.close()
    state = source.state_dict()
    loaded_steps = int(next(iter(state["optimizer"]["state"].values()))["step"])
    learned = {}
    for compiled in (False, True):
        ppo = make_ppo(compiled, tmp_path)
        ppo.step()  # compiles the step against this run's own optimizer state
        ppo.load_state_dict(through_checkpoint_files(state, tmp_path))  # fresh tensors: Adam adopts them and steps in place
        ppo.step()
        ppo.close()
        assert int(ppo.optimizer.state[ppo.parameters[0]]["step"]) == loaded_steps + ppo.config.epochs * 4  # 32 decisions / 8
        learned[compiled] = parameters_of(ppo)
    torch.testing.assert_close(learned[True], learned[False], rtol=0, atol=2e-6)
