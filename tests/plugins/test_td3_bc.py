"""TD3+BC: its term against a hand computation, and offline learning that beats the behaviour policy."""

import torch

from robotune.core.regularizer import RegularizerConfig
from robotune.plugins.actor_critic import OfflineActorCritic, OfflineActorCriticConfig
from robotune.plugins.td3_bc import TD3BCRegularizer
from tests.plugins.offline_fixtures import behaviour_error, offline_context, policy_error, small_batch, target_dataset, tiny_actor


def test_td3_bc_term_is_weighted_mse_over_batch_and_action_dimensions():
    regularizer = TD3BCRegularizer(RegularizerConfig(name="td3_bc", weight=2.0), 2, 2)
    policy_action = torch.tensor([[0.5, -0.5], [0.0, 1.0]])
    # squared errors 0.25, 0.25, 1, 0 against the batch's actions -> mean 0.375, times weight 2
    term, metrics = regularizer.actor_term(small_batch(), policy_action, torch.zeros(2))
    assert term.item() == 0.75 and metrics["td3_bc_mse"].item() == 0.375
    penalty, _ = regularizer.critic_term(small_batch(), policy_action)
    assert torch.equal(penalty, torch.zeros(2))


def test_offline_td3_bc_learns_a_better_policy_than_the_data(tmp_path):
    dataset = target_dataset()
    policy = tiny_actor()
    config = OfflineActorCriticConfig(name="offline", steps=600, batch_size=64, actor_lr=1e-3, critic_lr=1e-3, q_weight=2.5, normalize_q=True, gamma=0.5)
    engine = OfflineActorCritic(config, offline_context(policy, dataset, tmp_path, {"td3_bc": {}}))
    for _ in range(600):
        metrics = engine.step()
    assert engine.grad_steps == 600 and torch.isfinite(metrics["critic_loss"])
    assert policy_error(engine.inference_policy(), dataset) < 0.5 * behaviour_error(dataset)
