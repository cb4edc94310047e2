"""How fast could a gradient update get on this CPU? Each contender's matrix products, timed alone, against its whole update.

The speed goals compare robotune's updates with a reference's on one thread: TD3+BC against the
CORL-structured loop (benchmarks/offline_scores.py, 2x256 networks, batch 256, hopper-medium) and
SAC against Stable-Baselines3 (benchmarks/rl_engines.py, 256x256, batch 256, InvertedPendulum-v5).
This script builds the same contenders, then for each:

- `update_ms`: its update, timed in alternating blocks of 20 with the others (median block);
- `aten_ops`: the operators it dispatches per update (forward, backward, optimiser), counted with a
  TorchDispatchMode while one block runs;
- `matmul_ms`: the same block's matrix products (mm, addmm, bmm, baddbmm, with their recorded
  shapes, strides and dtypes) replayed alone on fresh tensors, per update: what the update would
  cost if everything else in it were free;
- `ceiling_vs_reference`: the reference's `update_ms` over this contender's `matmul_ms`, the largest
  speed-up its arithmetic allows, and `ratio_vs_reference`, the speed-up it has.

    python benchmarks/update_floor.py                  # both comparisons (needs the `bench` extra for SB3)
    python benchmarks/update_floor.py --only offline

The last line is a JSON list of records {comparison, contender, update_ms, matmul_ms, matmul_share,
aten_ops, matmul_calls, ratio_vs_reference, ceiling_vs_reference}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import offline_scores  # noqa: E402
import rl_engines  # noqa: E402

BLOCK = 20  # updates per timed block, as rl_engines times SAC
MATMULS = {"mm", "addmm", "bmm", "baddbmm"}


class OperatorLog(TorchDispatchMode):
    """Every operator dispatched while active; the matrix products with the layout of their tensor arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.matmuls: list[tuple[Callable, list]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        if func.overloadpacket.__name__ in MATMULS:
            layout = [(a.shape, a.stride(), a.dtype) if isinstance(a, torch.Tensor) else a for a in args]
            self.matmuls.append((func, layout))
        return func(*args, **(kwargs or {}))


def replay_seconds(matmuls: list[tuple[Callable, list]], repeats: int = 5) -> float:
    """Seconds the recorded matrix products take alone: each run on fresh tensors of its recorded layout,
    the best of `repeats` passes over the whole list."""
    calls = []
    for func, layout in matmuls:
        args = []
        for item in layout:
            if isinstance(item, tuple):
                shape, stride, dtype = item
                storage = 1 + sum((n - 1) * s for n, s in zip(shape, stride))
                args.append(torch.randn(storage).to(dtype).as_strided(shape, stride))
            else:
                args.append(item)
        calls.append((func, args))
    for func, args in calls:  # warm-up
        func(*args)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for func, args in calls:
            func(*args)
        best = min(best, time.perf_counter() - started)
    return best


def measure(comparison: str, reference: str, contenders: dict[str, Callable[[], None]], per_block: int, rounds: int) -> list[dict]:
    seconds = rl_engines.alternating_block_seconds(contenders, rounds)
    update_ms = {name: 1e3 * statistics.median(s) / per_block for name, s in seconds.items()}
    records = []
    for name, run_block in contenders.items():
        log = OperatorLog()
        with log:
            run_block()
        matmul_ms = 1e3 * replay_seconds(log.matmuls) / per_block
        records.append({
            "comparison": comparison, "contender": name,
            "update_ms": round(update_ms[name], 3), "matmul_ms": round(matmul_ms, 3),
            "matmul_share": round(matmul_ms / update_ms[name], 3),
            "aten_ops": round(log.count / per_block), "matmul_calls": round(len(log.matmuls) / per_block),
            "ratio_vs_reference": round(update_ms[reference] / update_ms[name], 3),
            "ceiling_vs_reference": round(update_ms[reference] / matmul_ms, 3),
        })
        print(f"{comparison:>8} {name:>36}: {update_ms[name]:6.2f} ms per update, matmuls alone {matmul_ms:5.2f} ms, "
              f"{records[-1]['aten_ops']:4d} operators; {records[-1]['ratio_vs_reference']:.2f}x the reference, "
              f"ceiling {records[-1]['ceiling_vs_reference']:.2f}x", flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("offline", "sac"), default=None)
    parser.add_argument("--rounds", type=int, default=15, help="timed blocks per contender")
    parser.add_argument("--dataset-steps", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = []
    if args.only in (None, "offline"):
        _, path = offline_scores.generate("hopper", "medium", args.dataset_steps, seed=0, out_dir=offline_scores.REPOSITORY / "data" / "locomotion")
        contenders = offline_scores.speed_contenders(path, BLOCK)
        for run_block in contenders.values():
            run_block()  # warm-up
        records += measure("td3_bc", offline_scores.REFERENCE, contenders, BLOCK, args.rounds)
    if args.only in (None, "sac"):
        with TemporaryDirectory() as run_dir:
            contenders, per_block, learners = rl_engines.update_contenders("sac", rl_engines.SAC_ENV, run_dir)
            records += measure("sac", "sb3", contenders, per_block, args.rounds)
            for learner in learners:
                learner.close()
    print(json.dumps(records))


if __name__ == "__main__":
    main()
