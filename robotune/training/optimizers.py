"""Optimiser construction shared by the RL engines."""

from __future__ import annotations

from typing import Any, Iterable

import torch


def make_adam(params: Iterable[Any], lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Fused Adam (one kernel over all parameters) where torch has it for the device, else foreach.

    At the small networks of RL the per-parameter Python loop of the default single-tensor Adam
    costs more than the arithmetic: measured in benchmarks/rl_engines.py.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, eps=eps, foreach=True)
