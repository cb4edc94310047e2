import copy
import math

import numpy as np
import torch

from robotune.core.dataset import Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes
from robotune.plugins.bc import BCConfig, BehaviourCloning
from robotune.plugins.gaussian import GaussianPolicy
from tests.helpers import make_context
from tests.plugins.conftest import ACTION_HIGH, ACTION_LOW, OBS_DIM, ToyProblem


def toy_dataset(episodes: int = 8, length: int = 20, seed: int = 0) -> EpisodeDataset:
    """Actions are a fixed function of the observation, so BC can fit them."""
    rng = np.random.default_rng(seed)
    low, high = np.array(ACTION_LOW, np.float32), np.array(ACTION_HIGH, np.float32)
    out = []
    for _ in range(episodes):
        obs = rng.uniform(-1, 1, (length, OBS_DIM)).astype(np.float32)
        action = low + (np.tanh(obs[:, :2]) + 1) / 2 * (high - low)
        zeros = np.zeros(length, np.float32)
        out.append(Episode(obs, action.astype(np.float32), zeros, zeros.astype(bool), zeros.astype(bool)))
    return concatenate_episodes(out)


def make_bc(**overrides) -> BehaviourCloning:
    policy = ToyProblem().make(GaussianPolicy)
    config = BCConfig(**{"steps": 100, "warmup_steps": 10, "lr": 1e-2, "batch_size": 32, **overrides})
    return BehaviourCloning(config, make_context(policy, dataset=toy_dataset()))


def test_learning_rate_warms_up_then_follows_a_cosine():
    bc = make_bc()
    assert math.isclose(bc._lr_factor(0), 0.1) and math.isclose(bc._lr_factor(9), 1.0)
    assert math.isclose(bc._lr_factor(10), 1.0)
    assert math.isclose(bc._lr_factor(55), 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert math.isclose(bc._lr_factor(100), 0.0, abs_tol=1e-12)


def test_steps_lower_the_loss_and_ema_lags_the_raw_weights():
    bc = make_bc(ema_decay=0.9)
    first = np.mean([bc.step()["loss"] for _ in range(5)])
    losses = [bc.step()["loss"] for _ in range(60)]
    assert np.mean(losses[-5:]) < 0.7 * first
    raw = dict(bc.policy.named_parameters())
    ema = dict(bc.inference_policy().named_parameters())
    assert ema.keys() == raw.keys()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    assert bc.grad_steps == 65 and bc.env_steps == 0


def test_bf16_autocast_computes_in_bfloat16_and_keeps_float32_weights():
    bc = make_bc(bf16_autocast=True)
    dtypes = []
    first_linear = next(m for m in bc.policy.modules() if isinstance(m, torch.nn.Linear))
    first_linear.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    first = np.mean([bc.step()["loss"] for _ in range(5)])
    losses = [bc.step()["loss"] for _ in range(60)]
    assert set(dtypes) == {torch.bfloat16}
    assert np.mean(losses[-5:]) < 0.7 * first
    assert all(p.dtype == torch.float32 for p in bc.policy.parameters())


def test_state_round_trip_continues_identically():
    bc = make_bc()
    for _ in range(5):
        bc.step()
    clone = make_bc()
    clone.load_state_dict(copy.deepcopy(bc.state_dict()))  # as from disk: no tensor shared with bc
    clone.context.generator.set_state(bc.context.generator.get_state())
    assert clone.scheduler.get_last_lr() == bc.scheduler.get_last_lr()
    assert [bc.step()["loss"] for _ in range(3)] == [clone.step()["loss"] for _ in range(3)]


def test_a_policy_without_parameters_trains_without_an_optimiser():
    from torch import nn

    class ConstantPolicy(GaussianPolicy):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            for parameter in self.parameters():
                parameter.requires_grad_(False)

    policy = ToyProblem().make(ConstantPolicy)
    bc = BehaviourCloning(BCConfig(steps=3), make_context(policy, dataset=toy_dataset()))
    assert bc.optimizer is None and bc.ema is None
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    assert math.isfinite(bc.step()["loss"])
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())
    assert isinstance(bc.inference_policy(), nn.Module)


def test_a_validation_split_holds_out_episodes_and_reports_their_loss():
    bc = make_bc(validation_fraction=0.25, validation_every=10)
    assert len(bc.sampler.obs_index) == 6 * 20  # 6 of 8 episodes train
    losses = [bc.step().get("val_loss") for _ in range(40)]
    reported = [l for l in losses if l is not None]
    assert len(reported) == 4 and reported[-1] < reported[0]
    assert bc.validation_loss() == bc.validation_loss()  # fixed batches and loss noise: comparable over time
