"""SAC-RND: the bonus in units of the training errors' std, larger off the data, in actor and critic terms."""

import torch

from robotune.plugins.offline_data import normalized_dataset
from robotune.plugins.sac_rnd import BilinearFirstPredictor, SACRNDConfig, SACRNDRegularizer
from tests.plugins.offline_fixtures import small_batch, target_dataset, tiny_actor


def test_bonus_is_error_over_std_and_enters_both_terms():
    rnd = SACRNDRegularizer(SACRNDConfig(name="sac_rnd", weight=2.0, hidden_dim=16, embedding_dim=4), 2, 2)
    rnd.error_std.fill_(4.0)
    batch, action = small_batch(), torch.tensor([[0.5, -0.5], [0.0, 1.0]])
    with torch.no_grad():
        error = (rnd.predictor(batch["obs"], action) - rnd.target(batch["obs"], action)).square().sum(-1)
        next_error = (rnd.predictor(batch["next_obs"], action) - rnd.target(batch["next_obs"], action)).square().sum(-1)
    term, _ = rnd.actor_term(batch, action, torch.zeros(2))
    torch.testing.assert_close(term, 2.0 * (error / 4.0).mean())
    penalty, _ = rnd.critic_term(batch, action)
    torch.testing.assert_close(penalty, 2.0 * next_error / 4.0)


def test_fitted_rnd_gives_random_actions_a_larger_bonus_than_dataset_ones():
    dataset = normalized_dataset(target_dataset(), tiny_actor())
    rnd = SACRNDRegularizer(SACRNDConfig(name="sac_rnd", hidden_dim=64, rnd_steps=500, rnd_lr=1e-3), 2, 2)
    global_state = torch.get_rng_state()
    SACRNDRegularizer(SACRNDConfig(name="sac_rnd"), 2, 2)
    assert torch.equal(torch.get_rng_state(), global_state)  # its own seed; the run's RNG untouched
    rnd.fit(dataset)
    obs, action = torch.from_numpy(dataset.obs[:256]), torch.from_numpy(dataset.action[:256])
    random_action = torch.rand(action.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert rnd.bonus(obs, random_action).mean() > 2 * rnd.bonus(obs, action).mean()


def test_predictor_first_layer_is_the_bilinear_form_computed_by_hand():
    """h_k = Σ_ij a_i W_kij s_j + b_k, the single product over a ⊗ s, against the sum written out."""
    predictor = BilinearFirstPredictor(obs_dim=3, action_dim=2, hidden_dim=4, embedding_dim=2)
    obs, action = torch.randn(5, 3, generator=torch.Generator().manual_seed(1)), torch.randn(5, 2, generator=torch.Generator().manual_seed(2))
    weight, bias = predictor.bilinear.weight, predictor.bilinear.bias  # (4, 2, 3), (4,)
    by_hand = torch.stack([
        torch.stack([sum(action[b, i] * weight[k, i, j] * obs[b, j] for i in range(2) for j in range(3)) + bias[k] for k in range(4)])
        for b in range(5)
    ])
    with torch.no_grad():
        torch.testing.assert_close(predictor(obs, action), predictor.rest(by_hand))
