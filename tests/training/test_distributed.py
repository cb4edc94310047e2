"""Multi-process BC (torch.distributed, gloo): averaged gradients, identical weights, a torchrun run like a single-process one."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from robotune.training.distributed import local_batch_size, own_rank_state, rank_seed

FIXED_BATCH, RANKS = 16, 2


def tiny_bc(rank: int, world_size: int):
    """BC on the toy target task, the policy's initial weights drawn from seed `rank` (so ranks start apart)."""
    from robotune.core.normalization import Normalizer
    from robotune.plugins.bc import BCConfig, BehaviourCloning
    from robotune.plugins.gaussian import GaussianConfig, GaussianPolicy
    from tests.helpers import make_context
    from tests.plugins.offline_fixtures import TINY_ACTOR, target_dataset
    from tests.rollout.toy_envs import TargetTask

    task = TargetTask()
    torch.manual_seed(rank)
    policy = GaussianPolicy(GaussianConfig(name="gaussian", **TINY_ACTOR), task.spec, Normalizer.identity(2), Normalizer(task.spec.action_low, task.spec.action_high))
    context = make_context(policy, task, target_dataset(episodes=20), seed=rank_seed(0, rank))
    context.rank, context.world_size = rank, world_size
    return BehaviourCloning(BCConfig(name="bc", batch_size=FIXED_BATCH, warmup_steps=1, ema_decay=0.9), context)


def fixed_batch(bc) -> dict[str, torch.Tensor]:
    """The same FIXED_BATCH windows in every process."""
    return bc.sampler.sample(FIXED_BATCH, torch.Generator().manual_seed(123))


def rank_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=RANKS)
    try:
        bc = tiny_bc(rank, RANKS)
        initial = {name: p.detach().clone() for name, p in bc.policy.named_parameters()}
        share = FIXED_BATCH // RANKS
        batch = {k: v[rank * share:(rank + 1) * share] for k, v in fixed_batch(bc).items()}
        loss, _ = bc.compute_loss(batch, bc.context.generator)
        loss.backward()
        grads = {name: p.grad.clone() for name, p in bc.policy.named_parameters()}
        for _ in range(5):
            bc.step()
        final = {name: p.detach().clone() for name, p in bc.ema.module.named_parameters()}
        tensors = {**{f"initial/{k}": v for k, v in initial.items()}, **{f"grad/{k}": v for k, v in grads.items()},
                   **{f"final/{k}": v for k, v in final.items()}}
        save_file(tensors, str(Path(out_dir) / f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes that each import torch and robotune: ~10 s on 2 cores
def test_two_ranks_start_alike_average_gradients_over_the_global_batch_and_stay_identical(tmp_path):
    mp.spawn(rank_worker, args=(free_port(), str(tmp_path)), nprocs=RANKS)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(RANKS)]

    single = tiny_bc(0, 1)  # rank 0's initial weights, the whole batch in one process
    loss, _ = single.policy.loss(fixed_batch(single), single.context.generator)
    loss.backward()
    for name, parameter in single.policy.named_parameters():
        # rank 1 drew other initial weights; wrapping gave it rank 0's
        for r in range(RANKS):
            torch.testing.assert_close(ranks[r][f"initial/{name}"], parameter.detach(), rtol=0, atol=0)
        # each rank's gradient is the gradient of the mean loss over both halves: the whole batch's
        for r in range(RANKS):
            torch.testing.assert_close(ranks[r][f"grad/{name}"], parameter.grad, rtol=1e-5, atol=1e-7)
        # five updates later (each rank drawing its own windows) both still hold the same weights
        torch.testing.assert_close(ranks[0][f"final/{name}"], ranks[1][f"final/{name}"], rtol=0, atol=0)


def test_rank_generators_and_batch_shares():
    assert rank_seed(7, 0) == 7, "rank 0 keeps the run's seed, so one process trains as before"
    assert len({rank_seed(0, 1), rank_seed(1, 1), rank_seed(0, 2), rank_seed(1, 0)}) == 4
    assert local_batch_size(256, 4) == 64
    with pytest.raises(ValueError, match="algo.batch_size=10 .* 4 processes"):
        local_batch_size(10, 4)
    rows = torch.stack([torch.Generator().manual_seed(s).get_state() for s in (1, 2)])
    generator = torch.Generator()
    generator.set_state(own_rank_state(rows, 1, 2, "generator"))
    assert torch.equal(generator.get_state(), rows[1])
    with pytest.raises(ValueError, match="run of 2 process.*this one has 3"):
        own_rank_state(rows, 1, 3, "generator")


def bc_overrides(run_dir: Path, cache_dir: Path) -> list[str]:
    return [
        "policy=gaussian", "policy.hidden_dim=64", "policy.num_blocks=1", "algo.steps=100", "algo.batch_size=64",
        "algo.warmup_steps=5", "data.num_episodes=8", f"data.cache_dir={cache_dir}", f"run_dir={run_dir}",
        "eval.episodes=2", "eval.num_envs=2", "eval.video=0", "logger=quiet", "logger.log_every=10", "checkpoint_every=50",
    ]


def torchrun(overrides: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={RANKS}", "-m", "robotune.cli", "train", *overrides]
    return subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)


def logged_losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "train/loss" in r]
    assert len(steps) == len(set(steps)), "one process alone writes metrics"
    return {r["step"]: r["train/loss"] for r in records if "train/loss" in r}


@pytest.mark.slow
def test_torchrun_bc_run_matches_the_single_process_run_and_resumes_exactly(tmp_path):
    from robotune.core.checkpoint import list_checkpoints, load_checkpoint
    from robotune.training.loop import train
    from tests.helpers import compose_config

    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    train(compose_config("train", bc_overrides(single_dir, tmp_path / "data")))
    run = torchrun(bc_overrides(ddp_dir, tmp_path / "data"))
    assert run.returncode == 0, run.stderr[-3000:]

    # The same global batch (64 = 2 x 32): the curves agree within the noise of drawing other windows.
    single, ddp = logged_losses(single_dir), logged_losses(ddp_dir)
    assert list(single) == list(ddp)
    late = list(single)[len(single) // 2:]
    single_late, ddp_late = (sum(c[s] for s in late) / len(late) for c in (single, ddp))
    assert abs(ddp_late - single_late) < 0.1 * single_late
    assert ddp_late < 0.5 * ddp[min(ddp)], "the two-process run learned"

    # Same checkpoint files and policy tensors as a single-process run's; evaluation and summary from rank 0.
    single_ckpt, ddp_ckpt = list_checkpoints(single_dir / "checkpoints")[-1], list_checkpoints(ddp_dir / "checkpoints")[-1]
    assert sorted(p.name for p in ddp_ckpt.iterdir()) == sorted(p.name for p in single_ckpt.iterdir())
    assert load_checkpoint(ddp_ckpt).policy.state_dict().keys() == load_checkpoint(single_ckpt).policy.state_dict().keys()
    assert json.loads((ddp_dir / "summary.json").read_text())["grad_steps"] == 100

    # Interrupted after the step-50 checkpoint: resuming restores every rank's generators, so the end is the same.
    cut_dir = tmp_path / "cut"
    shutil.copytree(ddp_dir, cut_dir)
    shutil.rmtree(list_checkpoints(cut_dir / "checkpoints")[-1])
    (cut_dir / "summary.json").unlink()
    resumed = torchrun(bc_overrides(cut_dir, tmp_path / "data"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "(step 50)" in resumed.stdout
    expected = load_file(str(ddp_ckpt / "policy.safetensors"))
    got = load_file(str(list_checkpoints(cut_dir / "checkpoints")[-1] / "policy.safetensors"))
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_an_algorithm_without_multi_process_support_refuses_torchrun(tmp_path):
    from robotune.training.distributed import ProcessRank
    from robotune.training.loop import build_components
    from tests.helpers import compose_config

    cfg = compose_config("train", ["algo=ppo", "policy=gaussian", f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(ValueError, match="algo=ppo does not train with several processes.*has 2"):
        build_components(cfg, None, ProcessRank(rank=0, world_size=2))
