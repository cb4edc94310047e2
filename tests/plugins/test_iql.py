"""IQL: the expectile loss and advantage weight by hand, and offline learning on the toy data."""

import torch

from robotune.plugins.iql import IQL, IQLConfig, advantage_weight, expectile_loss
from tests.plugins.offline_fixtures import behaviour_error, offline_context, policy_error, target_dataset, tiny_actor


def test_expectile_loss_weights_positive_errors_by_tau():
    # u = 1 weighs 0.7 * 1, u = -2 weighs 0.3 * 4 -> mean (0.7 + 1.2) / 2
    torch.testing.assert_close(expectile_loss(torch.tensor([1.0, -2.0]), 0.7), torch.tensor(0.95))


def test_advantage_weight_is_exponential_and_clipped_at_100():
    weight = advantage_weight(torch.tensor([0.0, 0.1, 2.0]), beta=3.0)
    torch.testing.assert_close(weight, torch.tensor([1.0, torch.exp(torch.tensor(0.3)).item(), 100.0]))


def test_iql_learns_a_better_policy_than_the_data(tmp_path):
    dataset = target_dataset()
    config = IQLConfig(name="iql", steps=600, batch_size=64, actor_lr=1e-3, critic_lr=1e-3, value_lr=1e-3, gamma=0.5, beta=1.0, expectile=0.7)
    iql = IQL(config, offline_context(tiny_actor(), dataset, tmp_path))
    for _ in range(600):
        metrics = iql.step()
    assert iql.grad_steps == 600 and torch.isfinite(metrics["value_loss"])
    assert policy_error(iql.inference_policy(), dataset) < behaviour_error(dataset)
    state = iql.state_dict()
    iql.load_state_dict(state)  # a checkpoint round trip restores every part
