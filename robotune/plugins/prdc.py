"""PRDC (Ran et al. 2023): policy regularisation with a dataset constraint, by nearest neighbour.

`fit` builds a KD-tree (scipy) over the dataset's points (β·s, a), states z-scored as the actor sees
them. For each batch state the actor's action is regressed toward the action of the nearest point
to (β·s, π(s)), the dataset's closest (state, action) pair when states count β times as much:

    â   = action part of argmin_{(s_i, a_i) ∈ D} ‖(β s) ⊕ π(s) − (β s_i) ⊕ a_i‖
    L_π = −α E[Q_1(s, π(s))] / E|Q_1| + weight · MSE(π(s), â)

The search is not differentiable; the gradient flows through π(s) in the MSE only. The Q term is
the engine's (α = `algo.q_weight`: 2.5 for hopper and walker2d, 40 for halfcheetah).
The tree is rebuilt by every `fit` (it is a function of the data), so it is not in checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from robotune.core.dataset import EpisodeDataset
from robotune.core.registry import register
from robotune.core.regularizer import Regularizer, RegularizerConfig


@dataclass
class PRDCConfig(RegularizerConfig):
    beta: float = 2.0  # state scale in the search (PRDC's README and d3rlpy default)
    workers: int = 1  # KD-tree query threads (scipy's `workers`; -1: every core)


@register("regularizer", "prdc")
class PRDCRegularizer(Regularizer):
    config: PRDCConfig

    def fit(self, dataset: EpisodeDataset) -> dict[str, float]:
        self.points = np.hstack([self.config.beta * np.asarray(dataset.obs, np.float32), np.asarray(dataset.action, np.float32)])
        self.tree = cKDTree(self.points)
        return {}

    def nearest_actions(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The dataset action of the point nearest to each (β·obs, action): (B, action_dim)."""
        if not hasattr(self, "tree"):
            raise RuntimeError("regularizer prdc has no dataset to search: it needs an offline dataset (algo=offline, or algo.offline_fraction > 0 with data.path)")
        query = torch.cat([self.config.beta * obs, action], -1).detach().cpu().numpy()
        _, index = self.tree.query(query, k=1, workers=self.config.workers)
        return torch.from_numpy(self.points[index, -self.action_dim :]).to(action.device)

    def actor_term(
        self, batch: dict[str, torch.Tensor], policy_action: torch.Tensor, q_value: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        bc = nn.functional.mse_loss(policy_action, self.nearest_actions(batch["obs"], policy_action))
        return self.config.weight * bc, {"prdc_mse": bc.detach()}
