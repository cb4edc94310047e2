"""Behaviour cloning in one process and with torchrun (DDP, gloo on the CPU): loss curves and wall time.

    PYTHONPATH=. python benchmarks/ddp_bc.py [--processes 1 2] [--steps 300] [--batch-size 128] [--seeds 0 1]

Every run is an ordinary `robotune train` command with the same global batch; with N processes each
draws batch_size / N windows and the gradients are averaged, so the curves should agree within the
noise of drawing other windows. A second single-process seed shows how large that noise is. Each run
gets a fresh run directory. Prints one line per run and, last, a JSON list of records
{processes, seed, final_loss, late_mean_loss, train_seconds, wall_seconds}. On a machine with
fewer cores than processes, the multi-process runs measure contention, not speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def overrides(args: argparse.Namespace, seed: int, run_dir: Path) -> list[str]:
    return [
        "policy=gaussian", f"policy.hidden_dim={args.hidden_dim}", "policy.num_blocks=2", f"algo.steps={args.steps}",
        f"algo.batch_size={args.batch_size}", "algo.warmup_steps=20", f"data.num_episodes={args.episodes}",
        f"seed={seed}", f"run_dir={run_dir}", "eval.episodes=10", "eval.video=0", "logger=quiet", "logger.log_every=10",
    ]


def run(args: argparse.Namespace, processes: int, seed: int) -> dict:
    run_dir = args.root / f"p{processes}-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    launcher = [sys.executable, "-m", "robotune.cli"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "robotune.cli"]
    started = time.monotonic()
    subprocess.run([*launcher, "train", *overrides(args, seed, run_dir)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    late = losses[len(losses) // 2:]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "processes": processes,
        "seed": seed,
        "final_loss": round(losses[-1], 4),
        "late_mean_loss": round(sum(late) / len(late), 4),  # mean over the second half of the logged steps
        "train_seconds": summary["train_seconds_this_session"],
        "wall_seconds": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="all seeds for 1 process, the first for more")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128, help="the global batch")
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--episodes", type=int, default=20, help="expert demonstrations recorded")
    parser.add_argument("--root", type=Path, default=Path("runs/ddp_bc"))
    args = parser.parse_args()

    results = []
    for processes in args.processes:
        for seed in args.seeds if processes == 1 else args.seeds[:1]:
            results.append(run(args, processes, seed))
            print(results[-1], flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
