"""Deterministic chunk regression: the network maps the observation history straight to the chunk, MSE.

The baseline the MIP paper found competitive with generative policies when architectures match.
Sampling ignores `deterministic` and the generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy
from robotune.core.registry import register
from robotune.core.spec import TaskSpec
from robotune.plugins.fast_inference import FastInference, NumpyTwin
from robotune.plugins.networks import BackbonePolicyConfig, make_chunk_network, make_obs_encoder


@dataclass
class RegressionConfig(BackbonePolicyConfig):
    pass


@register("policy", "regression")
class RegressionPolicy(FastInference, Policy):
    """chunk = f(o), trained by mean squared error on normalised actions."""

    config_class: ClassVar[type[RegressionConfig]] = RegressionConfig
    config: RegressionConfig

    def __init__(self, config: RegressionConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        self.obs_encoder = make_obs_encoder(config, spec.obs_dim)
        self.network = make_chunk_network(
            config, in_channels=0, out_channels=spec.action_dim, cond_dim=self.obs_encoder.out_dim, uses_time=False
        )

    def compute_loss(
        self, obs_norm: torch.Tensor, action_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """obs_norm (B, To, Do), action_norm (B, H, Da) -> MSE."""
        loss = nn.functional.mse_loss(self.network(None, self.obs_encoder(obs_norm)), action_norm)
        return loss, {"loss": loss.item()}

    def sample_chunk_norm(self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        return self.network(None, self.obs_encoder(obs_norm))

    def sample_chunk_norm_numpy(
        self, twin: NumpyTwin, obs: np.ndarray, deterministic: bool, generator: torch.Generator | None
    ) -> np.ndarray:
        return twin(None, obs)
