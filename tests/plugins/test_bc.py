import math

import torch

from robotune.plugins.bc import BCConfig, BehaviourCloning
from robotune.plugins.gaussian import GaussianPolicy
from tests.plugins.conftest import ToyProblem


def make_bc(**overrides) -> tuple[BehaviourCloning, ToyProblem]:
    toy = ToyProblem()
    policy = toy.make(GaussianPolicy)
    return BehaviourCloning(BCConfig(**{"steps": 100, "warmup_steps": 10, "lr": 1e-2, **overrides}), policy), toy


def test_learning_rate_warms_up_then_follows_a_cosine():
    bc, _ = make_bc()
    assert math.isclose(bc._lr_factor(0), 0.1) and math.isclose(bc._lr_factor(9), 1.0)
    assert math.isclose(bc._lr_factor(10), 1.0)
    assert math.isclose(bc._lr_factor(55), 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert math.isclose(bc._lr_factor(100), 0.0, abs_tol=1e-12)


def test_updates_lower_the_loss_and_ema_lags_the_raw_weights():
    torch.manual_seed(0)
    bc, toy = make_bc(ema_decay=0.9)
    batch = {"obs": toy.obs, "action": toy.action}
    first = bc.update(batch)["loss"]
    for _ in range(60):
        last = bc.update(batch)["loss"]
    assert last < first - 0.5
    raw = dict(bc.policy.named_parameters())
    ema = dict(bc.inference_policy().named_parameters())
    assert ema.keys() == raw.keys()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    assert bc.step == 61


def test_state_round_trip_restores_the_optimiser_and_schedule():
    bc, toy = make_bc()
    batch = {"obs": toy.obs, "action": toy.action}
    for _ in range(5):
        bc.update(batch)
    clone, _ = make_bc()
    clone.load_state_dict(bc.state_dict())
    assert clone.step == 5 and clone.scheduler.get_last_lr() == bc.scheduler.get_last_lr()
    torch.manual_seed(1)
    a = bc.update(batch)["loss"]
    torch.manual_seed(1)
    b = clone.update(batch)["loss"]
    assert a == b
