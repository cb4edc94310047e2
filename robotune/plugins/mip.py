"""Minimum Iterative Policy (MIP), from "Much Ado About Noising" (Pan, ..., Simchowitz; ICLR 2026).

The paper's finding: generative policies win on supervised iterative computation plus a little
training-time noise, not on modelling multiple modes. MIP keeps just that: one network π(o, a_in, t)
trained as two supervised regression steps, and two network calls at inference with no noise.

    step 0:  π(o, 0, 0)                    -> a,   weight 1 / t*
    step 1:  π(o, a + (1 − t*) ε, t*)       -> a,   weight 1 / (1 − t*),   ε ~ N(0, I)
    loss  =  loss_scale · (‖π_0 − a‖² / t*  +  ‖π_1 − a‖² / (1 − t*))

    inference:  â0 = π(o, 0, 0);   â = π(o, â0, t*)

This is the authors' `mip_loss` (defaults t* = 0.9, loss_scale 0.1), not the paper's printed form,
which uses a_in = t* a + (1 − t*) ε and a step-0 target t* a. Sampling ignores `deterministic` and
the generator: there is no noise at inference.
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
from robotune.plugins.networks import UNIT_TIME_SCALE, BackbonePolicyConfig, make_chunk_network, make_obs_encoder


# Both inference steps as the twin's affine sampler steps: x <- π(o, x, t_k), i.e. r_out = c_x0 = 1.
TWO_REPLACE_STEPS = np.array([[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]] * 2)  # columns: fast_inference.AFFINE_STEP_COLUMNS
TWO_REPLACE_STEPS.flags.writeable = False  # shared by every chunk


@dataclass
class MIPConfig(BackbonePolicyConfig):
    t_star: float = 0.9  # time of the second step (the authors' `t_two_step`); its input noise scale is 1 - t_star
    loss_scale: float = 0.1  # overall loss multiplier of the authors' implementation

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.t_star < 1:
            raise ValueError(f"policy.t_star must be strictly between 0 and 1, got {self.t_star}")


@register("policy", "mip")
class MinimumIterativePolicy(FastInference, Policy):
    """Two supervised refinement steps of one network; 2 network calls per chunk."""

    config_class: ClassVar[type[MIPConfig]] = MIPConfig
    config: MIPConfig

    def __init__(self, config: MIPConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        self.obs_encoder = make_obs_encoder(config, spec.obs_dim)
        self.network = make_chunk_network(
            config, in_channels=spec.action_dim, out_channels=spec.action_dim, cond_dim=self.obs_encoder.out_dim, uses_time=True
        )

    def _call(self, chunk_in: torch.Tensor, cond: torch.Tensor, t: float) -> torch.Tensor:
        return self.network(chunk_in, cond, torch.full((cond.shape[0],), t * UNIT_TIME_SCALE, device=cond.device))

    def compute_loss(
        self, obs_norm: torch.Tensor, action_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """obs_norm (B, To, Do), action_norm (B, H, Da) -> the weighted two-step regression loss."""
        t_star = self.config.t_star
        cond = self.obs_encoder(obs_norm)
        step0 = self._call(torch.zeros_like(action_norm), cond, 0.0)
        noisy = action_norm + (1 - t_star) * torch.randn(action_norm.shape, generator=generator, device=action_norm.device)
        step1 = self._call(noisy, cond, t_star)
        mse0 = nn.functional.mse_loss(step0, action_norm)
        mse1 = nn.functional.mse_loss(step1, action_norm)
        loss = self.config.loss_scale * (mse0 / t_star + mse1 / (1 - t_star))
        return loss, {"loss": loss.item(), "step0_mse": mse0.item(), "step1_mse": mse1.item()}

    def sample_chunk_norm(self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """obs_norm (B, To, Do) -> chunk (B, H, Da); the same with either mode and any generator."""
        shape = (obs_norm.shape[0], self.config.horizon, self.action_dim)
        cond = self.obs_encoder(obs_norm)
        first = self._call(torch.zeros(shape, device=obs_norm.device), cond, 0.0)
        return self._call(first, cond, self.config.t_star)

    def sample_chunk_norm_numpy(
        self, twin: NumpyTwin, obs: np.ndarray, deterministic: bool, generator: torch.Generator | None
    ) -> np.ndarray:
        """The same two calls in one compiled call on the NumPy twin: raw obs (B, To * Do) -> chunk (B, H * Da).

        As affine sampler steps: start from x = 0 and set x <- π(o, x, t_k) twice.
        """
        zeros = np.zeros((obs.shape[0], self.config.horizon * self.action_dim), np.float32)
        return twin.sample(obs, zeros, (0.0, self.config.t_star * UNIT_TIME_SCALE), TWO_REPLACE_STEPS)
