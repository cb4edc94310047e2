"""CDSA: the correction step by hand, and a fitted score model pulling perturbed actions back to the data."""

import torch

from robotune.plugins.cdsa import CDSAConfig, CDSARegularizer
from robotune.plugins.offline_data import normalized_dataset
from tests.plugins.offline_fixtures import target_dataset, tiny_actor


def test_correction_closes_a_fraction_of_the_gap_per_step():
    cdsa = CDSARegularizer(CDSAConfig(name="cdsa", sigma_min=0.1, correction_steps=2, step_fraction=0.5, hidden_dim=8), 2, 2)
    cdsa.score = lambda obs, action, sigma: -action / sigma[:, None] ** 2  # the score of data concentrated at 0
    action = torch.tensor([[0.8, -0.4]])
    # a ← a + η σ² (−a / σ²) = (1 − η) a, twice
    torch.testing.assert_close(cdsa.correct_action(torch.zeros(1, 2), action), action * 0.25)
    term, _ = cdsa.actor_term({}, action, torch.zeros(1))
    assert term.item() == 0.0  # training is untouched


def test_fitted_score_moves_perturbed_actions_toward_the_dataset():
    dataset = normalized_dataset(target_dataset(noise=0.05), tiny_actor())
    cdsa = CDSARegularizer(CDSAConfig(name="cdsa", hidden_dim=64, score_steps=1500, sigma_min=0.1, correction_steps=3), 2, 2)
    cdsa.fit(dataset)
    obs, action = torch.from_numpy(dataset.obs[:256]), torch.from_numpy(dataset.action[:256])
    perturbed = (action + 0.3 * torch.randn(action.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    corrected = cdsa.correct_action(obs, perturbed)
    before, after = (perturbed - action).square().sum(-1).mean(), (corrected - action).square().sum(-1).mean()
    assert after < 0.7 * before, (before, after)
