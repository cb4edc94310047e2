"""ReBRAC: actor and critic penalties against hand computations, and a short offline run."""

import torch

from robotune.plugins.actor_critic import OfflineActorCritic, OfflineActorCriticConfig
from robotune.plugins.rebrac import ReBRACConfig, ReBRACRegularizer
from tests.plugins.offline_fixtures import behaviour_error, offline_context, policy_error, small_batch, target_dataset, tiny_actor


def test_rebrac_penalties_sum_over_action_dimensions():
    regularizer = ReBRACRegularizer(ReBRACConfig(name="rebrac", actor_weight=0.1, critic_weight=0.5), 2, 2)
    batch = small_batch()
    policy_action = torch.tensor([[0.5, -0.5], [0.0, 1.0]])
    # per sample Σ_i: 0.25 + 0.25 = 0.5 and 1 + 0 = 1 -> mean 0.75, times β_actor 0.1
    term, _ = regularizer.actor_term(batch, policy_action, torch.zeros(2))
    torch.testing.assert_close(term, torch.tensor(0.075))
    # next actions against the dataset's (0.5, 0) and (-1, 1): Σ = 0.25 + 0 and 4 + 0, times β_critic 0.5
    penalty, _ = regularizer.critic_term(batch, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    torch.testing.assert_close(penalty, torch.tensor([0.125, 2.0]))


def test_rebrac_without_a_critic_weight_needs_no_next_action():
    regularizer = ReBRACRegularizer(ReBRACConfig(name="rebrac", critic_weight=0.0), 2, 2)
    batch = {k: v for k, v in small_batch().items() if k != "next_action"}
    penalty, _ = regularizer.critic_term(batch, torch.zeros(2, 2))
    assert torch.equal(penalty, torch.zeros(2))


def test_offline_rebrac_with_layer_norm_critics_learns(tmp_path):
    dataset = target_dataset()
    config = OfflineActorCriticConfig(name="offline", steps=600, batch_size=64, actor_lr=1e-3, critic_lr=1e-3, actor_q="min", normalize_q=True, gamma=0.5)
    context = offline_context(tiny_actor(), dataset, tmp_path, {"rebrac": {"actor_weight": 0.1, "critic_weight": 0.1}}, critic={"layer_norm": True})
    engine = OfflineActorCritic(config, context)
    for _ in range(600):
        engine.step()
    assert policy_error(engine.inference_policy(), dataset) < 0.5 * behaviour_error(dataset)
