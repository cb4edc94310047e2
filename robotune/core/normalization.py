"""Min/max normalisation into [-1, 1], stored as buffers so it travels inside a policy's weights.

Diffusion and flow policies sample in [-1, 1], so actions must map there exactly; observations use
the same map so that one mechanism covers both. Dimensions that barely vary keep unit scale instead
of exploding (a constant joint would otherwise divide by ~0).

What a plugin author can rely on: the training loop fits a policy's two normalisers to the training
dataset's per-dimension minimum and maximum (`robotune.processing.normalizers`; observations may be
z-scored instead), not the task's declared limits. `Policy.predict_chunk` clamps
every predicted chunk to [-1, 1] before unnormalising, so a policy never commands an action outside
the range its demonstrations covered. A loaded checkpoint gets them back from its weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MIN_RANGE = 1e-4


class Normalizer(nn.Module):
    """x_norm = (x - center) / half_range, per dimension of the last axis."""

    def __init__(self, low: torch.Tensor | np.ndarray, high: torch.Tensor | np.ndarray) -> None:
        super().__init__()
        low, high = (torch.as_tensor(np.asarray(bound), dtype=torch.float32) for bound in (low, high))
        if low.shape != high.shape or low.ndim != 1:
            raise ValueError(f"normalizer bounds must be 1-D and equal in shape, got {tuple(low.shape)} and {tuple(high.shape)}")
        if not torch.isfinite(low).all() or not torch.isfinite(high).all():
            raise ValueError("normalizer bounds must be finite")
        half_range = (high - low) / 2
        half_range = torch.where(half_range < MIN_RANGE, torch.ones_like(half_range), half_range)
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("half_range", half_range)

    @classmethod
    def identity(cls, dim: int) -> Normalizer:
        return cls(-np.ones(dim), np.ones(dim))

    @property
    def dim(self) -> int:
        return self.center.shape[0]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center) / self.half_range

    def unnormalize(self, x_norm: torch.Tensor) -> torch.Tensor:
        return x_norm * self.half_range + self.center
