"""Offline data in the units the actor-critic engines learn in, held as tensors ready to index.

robotune's normalisers map a dataset's min/max to [-1, 1]. The offline methods of CORL, PRDC, SPOT and
A2PR instead z-score states with the dataset's mean and std (plus eps 1e-3 against constant
dimensions), and their published hyperparameters were tuned in those units. A z-score is the same
affine map with another center and scale, x_norm = (x - mean) / (std + eps), so
`standardize_observations` writes mean and std + eps into the policy's own observation normaliser:
it then travels inside the policy's weights, and evaluation and deployment apply it with no extra
flags. Actions keep the min/max map, so the actor's tanh output spans the demonstrated range.

`TransitionTensors` gathers every transition of a dataset once, already normalised, so that one
batch is one `index_select` per field: no window gathering and no normalisation per step.
"""

from __future__ import annotations

import numpy as np
import torch

from robotune.core.dataset import EpisodeDataset
from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy
from robotune.training.samplers import TransitionSampler

ZSCORE_EPS = 1e-3  # CORL's compute_mean_std eps


def standardize_observations(policy: Policy, dataset: EpisodeDataset, eps: float = ZSCORE_EPS) -> None:
    """Make the policy's observation normaliser a z-score over the dataset's observations."""
    obs = np.asarray(dataset.obs, np.float64)
    mean, std = obs.mean(0), obs.std(0) + eps
    normalizer = policy.obs_normalizer
    with torch.no_grad():
        normalizer.center.copy_(torch.as_tensor(mean, dtype=torch.float32))
        normalizer.half_range.copy_(torch.as_tensor(std, dtype=torch.float32))


def return_range_scale(dataset: EpisodeDataset) -> float:
    """1000 / (max − min episode return): CORL's locomotion reward normalisation (IQL uses it)."""
    returns = np.add.reduceat(np.asarray(dataset.reward, np.float64), dataset.episode_starts)
    spread = float(returns.max() - returns.min())
    if spread <= 0:
        raise ValueError(f"dataset {dataset.source}: every episode has the same return, so algo.normalize_reward cannot scale by its range")
    return 1000.0 / spread


def normalized_dataset(dataset: EpisodeDataset, policy: Policy, reward_scale: float = 1.0) -> EpisodeDataset:
    """The dataset in the engine's units: observations and actions through the policy's normalisers,
    rewards multiplied by `reward_scale`. Regularizers fit their models on this, so that what they
    learn matches the batches they later see."""

    def through(normalizer: Normalizer, array: np.ndarray) -> np.ndarray:  # on the normaliser's device (a GPU too)
        with torch.no_grad():
            return normalizer.normalize(torch.from_numpy(np.array(array, np.float32)).to(normalizer.center.device)).cpu().numpy()

    return EpisodeDataset(
        obs=through(policy.obs_normalizer, dataset.obs),
        action=through(policy.action_normalizer, dataset.action),
        episode_ends=np.asarray(dataset.episode_ends),
        reward=np.asarray(dataset.reward, np.float32) * reward_scale,
        terminated=np.asarray(dataset.terminated),
        truncated=np.asarray(dataset.truncated),
        final_obs=through(policy.obs_normalizer, dataset.final_obs),
        source=f"{dataset.source} (normalised)",
        metadata=dataset.metadata,
    )


def require_single_step(policy: Policy, algorithm: str) -> None:
    """The offline learners train on one-step transitions; a chunked or windowed policy is refused by name."""
    pc = policy.config
    if pc.obs_horizon != 1 or pc.act_steps != 1:
        raise ValueError(
            f"algo={algorithm} learns single-step transitions: it needs policy.obs_horizon=1 and policy.act_steps=1, "
            f"got {pc.obs_horizon} and {pc.act_steps} (policy=td3_actor or policy=gaussian_sac are set up for it)"
        )


def offline_transitions(
    policy: Policy, dataset: EpisodeDataset, gamma: float, device: torch.device, standardize_obs: bool, normalize_reward: bool
) -> tuple[TransitionTensors, EpisodeDataset]:
    """Z-score the policy's observation normaliser (if asked), then the dataset in the engine's units and its transitions."""
    if standardize_obs:
        standardize_observations(policy, dataset)
    scale = return_range_scale(dataset) if normalize_reward else 1.0
    dataset_norm = normalized_dataset(dataset, policy, scale)
    return TransitionTensors(dataset_norm, gamma, device), dataset_norm


class TransitionTensors:
    """All one-step transitions of a (normalised) dataset as tensors on `device`.

    Fields, each with leading dimension N (the dataset's steps):
        obs (N, obs_dim), action (N, action_dim), reward (N,), next_obs (N, obs_dim),
        next_action (N, action_dim) (the dataset's next action, ReBRAC's critic penalty),
        bootstrap (N,) = γ (1 − terminated): the weight of the next state's value in the TD target.
    """

    def __init__(self, dataset: EpisodeDataset, gamma: float, device: torch.device) -> None:
        sampler = TransitionSampler(dataset, gamma)
        arrays = sampler.gather(np.arange(len(sampler)))
        self.fields = {
            name: torch.from_numpy(arrays[name]).to(device) for name in ("obs", "action", "reward", "next_obs", "next_action")
        }
        self.fields["bootstrap"] = torch.from_numpy(arrays["discount"] * (1 - arrays["terminated"])).to(device)
        self.device = device

    def __len__(self) -> int:
        return len(self.fields["reward"])

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A uniform batch; indices drawn on the CPU with `generator`."""
        index = torch.randint(len(self), (batch_size,), generator=generator).to(self.device)
        return {name: value.index_select(0, index) for name, value in self.fields.items()}
