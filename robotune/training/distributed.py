"""Multi-process training with torch.distributed, for runs launched by torchrun.

    torchrun --nproc_per_node=2 -m robotune.cli train algo.batch_size=256 ...

torchrun starts one process per GPU (or per group of CPU cores) and sets RANK, LOCAL_RANK,
WORLD_SIZE and the rendezvous address in each one's environment. `robotune train` then joins the
process group, gloo on the CPU and NCCL on GPUs. Every rank builds the same policy from the same
seed, and DistributedDataParallel broadcasts rank 0's weights at wrap time, so all start from
identical weights. Each rank draws its own share of the global batch with its own generators, and
gradients are averaged over ranks, so one step is one update on the global batch, as in a
single-process run. Only rank 0 writes logs, checkpoints and evaluations; a checkpoint holds every
rank's generator states, one row per rank, so a resumed run carries on as it would have.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from robotune.core.policy import Policy


@dataclass(frozen=True)
class ProcessRank:
    """This process's place among the processes training one run; one process by default."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the rank on this node: which GPU it drives

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, checkpoints and evaluations."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block before the others, who then find what it wrote (a demonstration cache)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


SINGLE_PROCESS = ProcessRank()


def join_process_group(device: torch.device) -> tuple[ProcessRank, torch.device]:
    """(this process's rank, its device): joins torchrun's process group when WORLD_SIZE > 1.

    On CUDA each rank takes the GPU of its local rank and the group uses NCCL; otherwise gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return SINGLE_PROCESS, device
    missing = [name for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: launch multi-process training with torchrun")
    process = ProcessRank(int(os.environ["RANK"]), world_size, int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        device = torch.device("cuda", process.local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return process, device


def leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s generators: the run's seed on rank 0 (a one-process run is unchanged),
    an independent stream from NumPy's SeedSequence on the others (seed + rank would make rank 1 of
    seed 0 draw what rank 0 of seed 1 draws)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1)[0])


def local_batch_size(batch_size: int, world_size: int, field: str = "algo.batch_size") -> int:
    """Each rank's share of the global batch."""
    if batch_size % world_size:
        raise ValueError(f"{field}={batch_size} is the global batch; it must divide evenly over the {world_size} processes")
    return batch_size // world_size


def gather_rank_states(state: torch.Tensor, world_size: int) -> torch.Tensor:
    """A generator state (N,) uint8 from every rank, as (world_size, N) on each; unchanged in one process."""
    if world_size == 1:
        return state
    device = _collective_device()
    rows = [torch.empty_like(state, device=device) for _ in range(world_size)]
    dist.all_gather(rows, state.to(device))
    return torch.stack(rows).cpu()


def own_rank_state(saved: torch.Tensor, rank: int, world_size: int, name: str) -> torch.Tensor:
    """This rank's row of a state saved by `gather_rank_states`; the checkpoint must come from as many processes."""
    saved_world = 1 if saved.dim() == 1 else saved.shape[0]
    if saved_world != world_size:
        raise ValueError(
            f"the checkpoint's {name} comes from a run of {saved_world} process(es), this one has {world_size}: "
            "resume with the same number of processes (torchrun --nproc_per_node), or start afresh with a new run_dir"
        )
    # a copy, not a view: Generator.set_state ignores a view's storage offset (torch 2.13) and read past row 0 fails
    return saved if world_size == 1 else saved[rank].clone()


def mean_over_ranks(value: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of a detached tensor over ranks (the loss of the global batch, for logging)."""
    if world_size == 1:
        return value
    total = value.detach().to(_collective_device()).clone()
    dist.all_reduce(total)  # gloo has no AVG reduction
    return total / world_size


def _collective_device() -> torch.device:
    """NCCL exchanges CUDA tensors only; gloo CPU tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


class PolicyLoss(nn.Module):
    """`policy.loss` as a module's forward: DistributedDataParallel averages the gradients of what
    its wrapped module's forward computed, and a policy's training entry point is `loss`."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.policy.loss(batch, generator)


def distributed_policy_loss(policy: Policy, device: torch.device) -> DistributedDataParallel:
    """`policy.loss` whose backward averages gradients over ranks; wrapping it broadcasts rank 0's weights."""
    return DistributedDataParallel(PolicyLoss(policy), device_ids=[device] if device.type == "cuda" else None)
