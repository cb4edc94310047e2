"""PRDC: the nearest (β·s, a) neighbour by hand, and a zero penalty on a dataset pair."""

import numpy as np
import torch

from robotune.core.dataset import EpisodeDataset
from robotune.plugins.prdc import PRDCConfig, PRDCRegularizer


def three_points() -> EpisodeDataset:
    obs = np.array([[0.0], [1.0], [2.0]], np.float32)
    action = np.array([[0.5], [-0.5], [1.0]], np.float32)
    return EpisodeDataset(obs, action, np.array([3]), reward=np.zeros(3, np.float32))


def test_nearest_neighbour_weighs_states_by_beta():
    prdc = PRDCRegularizer(PRDCConfig(name="prdc", beta=2.0), 1, 1)
    prdc.fit(three_points())
    # query (s=0.6, a=1.0): points (2β·s, a) are (0, .5), (2, -.5), (4, 1); query (1.2, 1.0)
    # distances² 1.44 + 0.25 = 1.69, 0.64 + 2.25 = 2.89, 7.84 -> the first point, action 0.5
    nearest = prdc.nearest_actions(torch.tensor([[0.6]]), torch.tensor([[1.0]]))
    assert nearest.tolist() == [[0.5]]
    # with β = 10 the state dominates: 0.6 is nearest to s = 1 -> action -0.5
    prdc_state = PRDCRegularizer(PRDCConfig(name="prdc", beta=10.0), 1, 1)
    prdc_state.fit(three_points())
    assert prdc_state.nearest_actions(torch.tensor([[0.6]]), torch.tensor([[1.0]])).tolist() == [[-0.5]]


def test_penalty_is_zero_on_a_dataset_pair_and_mse_elsewhere():
    prdc = PRDCRegularizer(PRDCConfig(name="prdc", beta=2.0, weight=3.0), 1, 1)
    prdc.fit(three_points())
    batch = {"obs": torch.tensor([[1.0], [0.0]])}
    term, _ = prdc.actor_term(batch, torch.tensor([[-0.5], [0.5]]), torch.zeros(2))
    assert term.item() == 0.0
    # (s=0, a=0.3): nearest is (0, 0.5) -> weight · mean((0.3 − 0.5)², (−0.5 − (−0.5))²)
    term, _ = prdc.actor_term(batch, torch.tensor([[-0.5], [0.3]]), torch.zeros(2))
    torch.testing.assert_close(term, torch.tensor(3.0 * 0.04 / 2))
