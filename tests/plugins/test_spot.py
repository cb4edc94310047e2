"""SPOT: the negative ELBO by hand, a density that ranks data above random actions, and its actor term."""

import math

import torch

from robotune.plugins.offline_data import normalized_dataset
from robotune.plugins.spot import SPOTConfig, SPOTRegularizer
from tests.plugins.offline_fixtures import small_batch, target_dataset, tiny_actor


def test_negative_elbo_matches_a_hand_computation():
    spot = SPOTRegularizer(SPOTConfig(name="spot", weight=0.5, kl_weight=0.5, hidden_dim=8), 2, 2)
    with torch.no_grad():  # encoder: μ = 0.5, log σ = 0 everywhere; decoder: tanh(0.2) whatever the latent
        for layer in (spot.vae.encoder[-1], spot.vae.decoder[-1]):
            layer.weight.zero_()
        spot.vae.encoder[-1].bias.copy_(torch.tensor([0.5] * 4 + [0.0] * 4))
        spot.vae.decoder[-1].bias.fill_(0.2)
    batch, policy_action = small_batch(), torch.tensor([[0.5, -0.5], [0.0, 1.0]])
    kl = -0.5 * (1 + 0 - 0.25 - 1)  # per latent dim, mean over dims is the same
    decoded = math.tanh(0.2)
    reconstruction = [((decoded - 0.5) ** 2 + (decoded + 0.5) ** 2) / 2, ((decoded - 0.0) ** 2 + (decoded - 1.0) ** 2) / 2]
    expected = 0.5 * sum(r + 0.5 * kl for r in reconstruction) / 2
    term, _ = spot.actor_term(batch, policy_action, torch.zeros(2))
    torch.testing.assert_close(term, torch.tensor(expected, dtype=torch.float32))


def test_fitted_vae_scores_dataset_actions_as_denser_than_random_ones():
    dataset = normalized_dataset(target_dataset(), tiny_actor())
    spot = SPOTRegularizer(SPOTConfig(name="spot", hidden_dim=64, vae_steps=400, vae_batch_size=128), 2, 2)
    spot.fit(dataset)
    obs, action = torch.from_numpy(dataset.obs[:256]), torch.from_numpy(dataset.action[:256])
    random_action = torch.rand(action.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    generator = torch.Generator().manual_seed(1)
    data_elbo = spot.vae.negative_elbo(obs, action, 0.5, generator).mean()
    random_elbo = spot.vae.negative_elbo(obs, random_action, 0.5, generator).mean()
    assert data_elbo < 0.5 * random_elbo, (data_elbo, random_elbo)
    assert not any(p.requires_grad for p in spot.vae.parameters())  # frozen: the actor's gradient reaches the policy only
