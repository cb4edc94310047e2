"""Optimiser construction and steps shared by the RL engines."""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch.optim.adam import adam


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


def clipped_adam_step(optimizer: torch.optim.Adam, params: list[torch.Tensor], max_norm: float) -> None:
    """`clip_grad_norm` of `params` to `max_norm`, `optimizer`'s Adam step, then the gradients set to None (as
    `zero_grad` does, without its per-call profiler record).

    Eager, the step is `optimizer.step()` (fused). Under torch.compile (PPO's `algo.compile`) it runs the body of
    `Adam.step` itself, `_init_group` (which Dynamo special-cases: state set up at trace time, state tensors guarded by
    identity, so a loaded checkpoint recompiles once) and the functional `adam` in its single-tensor form, which
    inductor fuses: the clip, every parameter group's update and the gradients' release become one graph with one
    guard check (a float learning rate is a constant of it: a schedule would recompile at every change).
    Compiling `optimizer.step()` instead gives three graphs (it breaks the graph before and after its update,
    `_use_grad` in torch/optim/optimizer.py, and Dynamo does not trace the fused kernel): at PPO's 64x64 networks
    that made the update no faster than with the loss alone compiled (README, "PPO and SAC against
    Stable-Baselines3"). Same Adam either way, up to rounding: tests/plugins/test_compiled_updates.py compares the
    parameters.
    """
    clip_grad_norm(params, max_norm)
    if torch.compiler.is_compiling():
        with torch.no_grad():
            for group in optimizer.param_groups:
                params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = [], [], [], [], [], []
                has_complex = optimizer._init_group(group, params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps)
                beta1, beta2 = group["betas"]
                adam(
                    params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
                    amsgrad=group["amsgrad"], has_complex=has_complex, beta1=beta1, beta2=beta2, lr=group["lr"],
                    weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                    foreach=False, fused=False, capturable=group["capturable"], differentiable=group["differentiable"],
                    decoupled_weight_decay=group["decoupled_weight_decay"],
                )
    else:
        optimizer.step()
    for param in params:
        param.grad = None
