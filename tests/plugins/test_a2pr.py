"""A2PR: the advantage-selected, masked BC term by hand, and its online VAE and value updates."""

import torch

from robotune.plugins.a2pr import A2PRConfig, A2PRRegularizer
from tests.plugins.offline_fixtures import small_batch


class FixedCritic:
    """Q(s, a) = −Σ_i a_i², one member: the best action is 0."""

    def q_value(self, obs, action):
        return -action.square().sum(-1)[None]


def test_actor_term_regresses_to_the_better_of_data_and_reconstruction():
    a2pr = A2PRRegularizer(A2PRConfig(name="a2pr", mask=0.5, hidden_dim=8, value_hidden_dim=8), 2, 2)
    a2pr.attach_critic(FixedCritic())
    reconstruction = torch.tensor([[0.1, 0.0], [1.0, -1.0]])
    a2pr.vae.reconstruct = lambda obs, action, generator: (reconstruction, torch.zeros(2))
    with torch.no_grad():  # V(s) = −0.5 everywhere
        a2pr.value[-1].weight.zero_()
        a2pr.value[-1].bias.fill_(-0.5)
    batch, policy_action = small_batch(), torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    # sample 0: Q(recon) = −0.01, Q(a=(0,0)) = 0 -> A: 0.49 vs 0.5, the data action wins; mask 0.5·(1 + 1) = 1
    #           squared error to (0, 0): 0.25 + 0.25
    # sample 1: Q(recon) = −2, Q(a=(1,1)) = −2 -> A equal, the reconstruction wins (≥); both below V -> mask 0
    expected = (1.0 * (0.25 + 0.25) + 0.0) / 4
    term, _ = a2pr.actor_term(batch, policy_action, torch.zeros(2))
    torch.testing.assert_close(term, torch.tensor(expected))


def test_update_fits_the_value_to_the_td_target():
    torch.manual_seed(0)
    a2pr = A2PRRegularizer(A2PRConfig(name="a2pr", hidden_dim=16, value_hidden_dim=16, value_lr=1e-2), 2, 2)
    a2pr.attach_critic(FixedCritic())
    batch = {**small_batch(), "q_target": torch.tensor([1.0, -1.0])}
    first = a2pr.update(batch)["a2pr_value_loss"]
    for _ in range(100):
        last = a2pr.update(batch)["a2pr_value_loss"]
    assert last < 0.1 * first
