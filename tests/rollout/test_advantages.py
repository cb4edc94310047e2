import torch

from robotune.rollout.advantages import generalized_advantages

GAMMA, LAM = 0.9, 0.8


def hand_gae(rewards, values, next_values, discounts, terminated, ended):
    """The recursion written out with Python floats, backwards over one environment's decisions."""
    advantages, running = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + discounts[t] * (0.0 if terminated[t] else next_values[t]) - values[t]
        running = delta + discounts[t] * LAM * (0.0 if ended[t] else 1.0) * running
        advantages[t] = running
    return advantages


def test_gae_matches_a_hand_computation_with_a_truncation_and_a_termination():
    # One environment: an episode truncated after decision 1 (bootstrapped from V(final obs) = 5),
    # then an episode terminated at decision 3, then one cut by the end of the rollout (decision 4).
    rewards = [1.0, 2.0, 0.5, -1.0, 3.0]
    values = [0.3, 0.6, 0.2, 0.1, 0.4]
    next_values = [0.6, 5.0, 0.1, 9.0, 0.7]  # 9.0 must be ignored: termination
    discounts = [GAMMA, GAMMA**2, GAMMA, GAMMA, GAMMA**3]  # chunks of 1-3 steps
    terminated = [False, False, False, True, False]
    ended = [False, True, False, True, False]
    as_column = lambda xs, dtype=torch.float64: torch.tensor(xs, dtype=dtype)[:, None]  # noqa: E731
    advantages, returns = generalized_advantages(
        as_column(rewards), as_column(values), as_column(next_values), as_column(discounts),
        as_column(terminated, torch.bool), as_column(ended, torch.bool), LAM,
    )
    expected = hand_gae(rewards, values, next_values, discounts, terminated, ended)
    torch.testing.assert_close(advantages[:, 0], torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(returns[:, 0], torch.tensor(expected, dtype=torch.float64) + torch.tensor(values, dtype=torch.float64))
    # Spot checks of the two boundaries, by hand:
    assert abs(advantages[1, 0].item() - (2.0 + GAMMA**2 * 5.0 - 0.6)) < 1e-12  # truncated: bootstrapped, chain cut
    assert abs(advantages[3, 0].item() - (-1.0 - 0.1)) < 1e-12  # terminated: no bootstrap


def test_environments_in_columns_do_not_mix():
    rewards = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    zeros = torch.zeros(2, 2)
    never = torch.zeros(2, 2, dtype=torch.bool)
    advantages, _ = generalized_advantages(rewards, zeros, zeros, torch.full((2, 2), 0.5), never, never, 1.0)
    assert torch.equal(advantages[:, 1], torch.zeros(2))
    torch.testing.assert_close(advantages[:, 0], torch.tensor([1.5, 1.0]))
