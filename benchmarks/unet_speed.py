"""The 1-D U-Net backbone's speed on CPU: the plain torch network against robotune's faster paths, in one run.

    PYTHONPATH=. python benchmarks/unet_speed.py [--threads 1] [--rounds 5] [--with-compile] [--profile]

The network is DiffusionPolicy with `backbone=unet` at its default size (channels 64/128/256,
kernel 5, 4.13M parameters) on the default task shape (obs_dim 6, action_dim 2, obs_horizon 2,
horizon 16), untrained (speed does not depend on the weights). Cases, all on `--threads` threads:

    training step, batch 256   one `algo=bc` step (batch draw, loss, backward, gradient clipping,
                               AdamW, EMA) on a synthetic dataset:
        reference              the plain torch network in float32, as BC runs it by default;
        bf16                   the same with `algo.bf16_autocast=true` (bfloat16 convolutions and
                               matrix products, float32 weights and loss): an explicit option,
                               reported apart because it is not the float32 function;
        compiled               (--with-compile) the network under torch.compile (inductor), float32;
                               compiling takes minutes here, so it is opt-in;
        mlp                    the default residual-MLP policy's step, for scale.
    DDIM-10 chunk, batch 1     `predict_chunk` (raw observation in, raw chunk out):
        reference              the policy itself: the plain torch network in inference mode;
        fast path              `policy.export_for_inference()`, as evaluation and deployment run it:
                               the NumPy twin and its compiled sampler (fast_inference.py).

Cases run in interleaved rounds, so that load from other processes on a shared machine falls on all
of them alike; each case's figure is the median over all its timed calls, and the ratios are
reference / case. Two untimed calls per case first (their time is printed as warm-up: compilation).
`--profile` then prints where the time goes: the training step's FLOP count against this core's
best float32 and bfloat16 matrix-product rates, and torch.profiler's per-op self times of the torch
cases. The last line is one JSON object:
{threads, steal_percent, records: [{case, variant, batch, median_ms, min_ms, speedup}]}.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from machine_noise import StealMeter

from robotune.core.algorithm import TrainingContext
from robotune.core.dataset import EpisodeDataset
from robotune.core.normalization import Normalizer
from robotune.core.spec import TaskSpec
from robotune.plugins.bc import BCConfig, BehaviourCloning
from robotune.plugins.diffusion import DiffusionPolicy

OBS_DIM, ACTION_DIM = 6, 2
TRAIN_BATCH = 256


@dataclass
class Case:
    case: str
    variant: str
    batch: int
    run: Callable[[], object]
    calls_per_round: int
    warmup_s: float = 0.0  # the first two calls: compilation (Numba, inductor) and first-touch
    samples_s: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return 1e3 * float(np.median(self.samples_s))


def build_policy(**overrides) -> DiffusionPolicy:
    torch.manual_seed(0)
    spec = TaskSpec("bench", tuple(f"x{i}" for i in range(OBS_DIM)), (-1.0,) * ACTION_DIM, (1.0,) * ACTION_DIM, 10.0, 100)
    config = DiffusionPolicy.config_class(**overrides)
    normalizer = Normalizer(-2 * np.ones(OBS_DIM), 2 * np.ones(OBS_DIM))
    return DiffusionPolicy(config, spec, normalizer, Normalizer.identity(ACTION_DIM))


def synthetic_dataset(episodes: int = 20, length: int = 100) -> EpisodeDataset:
    rng = np.random.default_rng(0)
    steps = episodes * length
    return EpisodeDataset(
        rng.uniform(-2, 2, (steps, OBS_DIM)).astype(np.float32),
        rng.uniform(-1, 1, (steps, ACTION_DIM)).astype(np.float32),
        np.arange(length, steps + 1, length),
    )


def bc_step(policy: DiffusionPolicy, dataset: EpisodeDataset, **overrides) -> Callable[[], object]:
    """One `algo=bc` step of `policy` per call, at batch 256 and BC's defaults otherwise."""
    context = TrainingContext(
        policy=policy, task=None, dataset=dataset, make_envs=None, make_chunk_rollout=None, build_critic=None,
        build_regularizers=None, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0), work_dir=Path("."), seed=0,
    )
    return BehaviourCloning(BCConfig(batch_size=TRAIN_BATCH, **overrides), context).step


def cases(with_compile: bool) -> list[Case]:
    dataset = synthetic_dataset()
    unet = build_policy(backbone="unet")
    training = [
        Case("training step", "reference", TRAIN_BATCH, bc_step(unet, dataset), 2),
        Case("training step", "bf16", TRAIN_BATCH, bc_step(copy.deepcopy(unet), dataset, bf16_autocast=True), 2),
    ]
    if with_compile:
        compiled = copy.deepcopy(unet)
        compiled.network.compile()
        training.append(Case("training step", "compiled", TRAIN_BATCH, bc_step(compiled, dataset), 2))
    training.append(Case("training step", "mlp", TRAIN_BATCH, bc_step(build_policy(), dataset), 4))
    inference = build_policy(backbone="unet").eval()
    exported = inference.export_for_inference()
    obs, generator = torch.randn(1, 2, OBS_DIM), torch.Generator().manual_seed(0)
    chunk = [
        Case("DDIM-10 chunk", "reference", 1, lambda: inference.predict_chunk(obs, True, generator), 10),
        Case("DDIM-10 chunk", "fast path", 1, lambda: exported.predict_chunk(obs, True, generator), 10),
    ]
    return training + chunk


def print_profile(case: Case, rows: int = 12) -> None:
    """Where one call's time goes, per aten op (self time), averaged over two calls."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            case.run()
    events = sorted((e for e in prof.key_averages() if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)
    total_ms = sum(e.self_cpu_time_total for e in events) / 2e3
    print(f"{case.case}, {case.variant}: {total_ms:.1f} ms of aten self time per call")
    for event in events[:rows]:
        ms = event.self_cpu_time_total / 2e3
        print(f"  {event.key:<36} {ms:8.2f} ms {100 * ms / total_ms:5.1f}%  {event.count // 2:>5} calls")


def print_arithmetic_floor() -> None:
    """The training step's multiply-adds against this core's best matrix-product rate: how fast it could be."""
    from torch.utils.flop_counter import FlopCounterMode

    network = build_policy(backbone="unet").network
    with FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 16, ACTION_DIM), torch.zeros(1, 2 * OBS_DIM), torch.zeros(1))
    forward_flops = counter.get_total_flops()
    step_gflop = 3 * TRAIN_BATCH * forward_flops / 1e9  # backward: twice the forward (input and weight gradients)
    print(f"U-Net forward: {forward_flops / 1e6:.1f} MFLOP per sample; training step at batch {TRAIN_BATCH}: ~{step_gflop:.1f} GFLOP")
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
        seconds = []
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            seconds.append(time.perf_counter() - start)
        rate = 2 * 1024**3 / min(seconds) / 1e9
        print(f"  {dtype}: 1024^3 matmul at {rate:.0f} GFLOP/s -> at least {1e3 * step_gflop / rate:.0f} ms per step for the arithmetic alone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every case (the kernels of the fast path use one)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--with-compile", action="store_true", help="add the torch.compile training case (minutes to compile)")
    parser.add_argument("--profile", action="store_true", help="first print torch.profiler's per-op table of each torch case")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    all_cases = cases(args.with_compile)
    for case in all_cases:  # warm up: first-call work (Numba, inductor) stays out of the timings
        start = time.perf_counter()
        for _ in range(2):
            case.run()
        case.warmup_s = time.perf_counter() - start
    if args.profile:
        print_arithmetic_floor()
        for case in all_cases:
            if case.variant in ("reference", "bf16"):
                print_profile(case)
    steal_meter = StealMeter()
    for _ in range(args.rounds):
        for case in all_cases:
            for _ in range(case.calls_per_round):
                start = time.perf_counter()
                case.run()
                case.samples_s.append(time.perf_counter() - start)
    steal = steal_meter.percent()

    reference = {case.case: case.median_ms for case in all_cases if case.variant == "reference"}
    records = [
        {
            "case": case.case,
            "variant": case.variant,
            "batch": case.batch,
            "median_ms": round(case.median_ms, 3),
            "min_ms": round(1e3 * min(case.samples_s), 3),
            "speedup": round(reference[case.case] / case.median_ms, 2),
        }
        for case in all_cases
    ]
    print(f"{'case':<15} {'variant':<10} {'batch':>5} {'median ms':>10} {'min ms':>9} {'speedup':>8} {'n':>4} {'warm-up s':>10}")
    for case, record in zip(all_cases, records):
        print(
            f"{record['case']:<15} {record['variant']:<10} {record['batch']:>5} {record['median_ms']:>10.2f} "
            f"{record['min_ms']:>9.2f} {record['speedup']:>7.2f}x {len(case.samples_s):>4} {case.warmup_s:>10.1f}"
        )
    print(f"threads: {args.threads}; host steal while timing (machine_noise.py): "
          f"{'not reported' if steal is None else f'{steal:.2f}% of CPU time'}; load average {os.getloadavg()[0]:.1f}")
    print(json.dumps({"threads": args.threads, "steal_percent": steal, "records": records}))


if __name__ == "__main__":
    main()
