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


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients of `params` so that their joint L2 norm is at most `max_norm`; returns the norm before.

    `torch.nn.utils.clip_grad_norm_` computes the same, but on the CPU it takes a kernel per tensor
    to form the norm: at PPO's 64x64 networks this one norm over the concatenated gradients costs
    ~2.5x less, and the clip is ~10% of an update (benchmarks/rl_engines.py).
    """
    grads = [p.grad for p in params if p.grad is not None]
    total_norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))
    torch._foreach_mul_(grads, (max_norm / (total_norm + 1e-6)).clamp(max=1.0))
    return total_norm
