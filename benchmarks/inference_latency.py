"""Chunk-inference latency of every built-in policy on one CPU thread, against a diffusers step() loop.

    PYTHONPATH=. python benchmarks/inference_latency.py [--seconds-per-case 2.0] [--cpu-latency-us 0]

Each case times `predict_chunk` (raw obs in, raw chunk out: normalise, sample, clamp, unnormalise)
at batch 1 and 64 on the default task shape (obs_dim 6, action_dim 2, obs_horizon 2, horizon 16)
with default-sized, untrained networks (latency does not depend on the weights). Extra rows:

    diffusers-step-loop   the same network and steps, sampled the way Diffusion Policy and LeRobot
                          do it: a diffusers DDIMScheduler built once, set_timesteps() per chunk and
                          step() after every network call, inside the same normalise/clamp wrapper;
    diffusion-torch       the policy's torch sampler with precomputed coefficients, NumPy twin off
                          (for the MLP and, at batch 1, the U-Net backbone).

Cases are timed in interleaved rounds, so that load from other processes on a shared machine falls
on all of them alike and the ratios stay meaningful. Calibration cases run in the same rounds
(printed, not in the JSON) so that absolute numbers can be compared across machines and load: four
512x512 float32 mat-vecs in NumPy, one eager torch call of a plain 4x512 Mish MLP, and the memory
floor of DDIM-10 at batch 1: ten compiled passes that only read the twin's weight arrays (sum, no
other arithmetic), which is the traffic of ten network calls. The last output line is one JSON list
of records {policy, backbone, params, steps, batch, p50_ms, p99_ms}. With `--cpu-latency-us N` the
timed rounds run under the PM QoS request a deployment holds (RunnerConfig.cpu_latency_us, root).
"""

from __future__ import annotations

import os

# One thread everywhere, set before NumPy and torch load their BLAS.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine_noise import StealMeter  # noqa: E402

from robotune.core.normalization import Normalizer  # noqa: E402
from robotune.core.policy import Policy  # noqa: E402
from robotune.core.spec import TaskSpec  # noqa: E402
from robotune.deploy.cpu_latency import CpuLatencyRequest  # noqa: E402
from robotune.plugins.diffusion import DiffusionPolicy  # noqa: E402
from robotune.plugins.flow_matching import FlowMatchingPolicy  # noqa: E402
from robotune.plugins.gaussian import GaussianPolicy  # noqa: E402
from robotune.plugins.mip import MinimumIterativePolicy  # noqa: E402
from robotune.plugins.regression import RegressionPolicy  # noqa: E402

OBS_DIM, ACTION_DIM = 6, 2
BATCHES = (1, 64)
ROUNDS = 5


@dataclass
class Case:
    policy: str
    backbone: str
    params: int
    steps: int
    batch: int
    run: Callable[[], object]
    calls_per_round: int = 1
    samples_ns: list[int] = field(default_factory=list)

    def record(self) -> dict:
        samples_ms = np.array(self.samples_ns) / 1e6
        return {
            "policy": self.policy,
            "backbone": self.backbone,
            "params": self.params,
            "steps": self.steps,
            "batch": self.batch,
            "p50_ms": round(float(np.percentile(samples_ms, 50)), 4),
            "p99_ms": round(float(np.percentile(samples_ms, 99)), 4),
        }


def build(policy_class: type[Policy], **overrides) -> Policy:
    torch.manual_seed(0)
    spec = TaskSpec("bench", tuple(f"x{i}" for i in range(OBS_DIM)), (-1.0,) * ACTION_DIM, (1.0,) * ACTION_DIM, 10.0, 100)
    config = policy_class.config_class(**overrides)
    normalizer = Normalizer(-2 * np.ones(OBS_DIM), 2 * np.ones(OBS_DIM))
    return policy_class(config, spec, normalizer, Normalizer.identity(ACTION_DIM)).eval()


def diffusers_step_loop(policy: DiffusionPolicy, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """predict_chunk's wrapper around the step()-per-denoising-step sampler."""
    with torch.inference_mode():
        chunk_norm = policy.sample_chunk_norm_with_scheduler(policy.obs_normalizer.normalize(obs), True, generator)
        return policy.action_normalizer.unnormalize(chunk_norm.clamp(-1.0, 1.0))


def weight_read_floor(policy: DiffusionPolicy, steps: int) -> Callable[[], float]:
    """`steps` passes over the policy's NumPy-twin weights that only read them: a DDIM chunk's memory floor."""
    import numba

    @numba.njit(nogil=True, fastmath=True)
    def read(weights: np.ndarray) -> float:  # summed with reassociation: vectorised, bound by memory
        flat = weights.reshape(-1)
        total = np.float32(0.0)
        for i in range(flat.size):
            total += flat[i]
        return total

    twin = policy.export_for_inference().twin
    arrays = [twin.w_obs, twin.w_chunk, twin.w_norm_linear1, twin.w_linear2, twin.w_out]
    return lambda: sum(read(a) for _ in range(steps) for a in arrays)


def calibration_cases() -> list[Case]:
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((512, 512)).astype(np.float32) for _ in range(4)]
    row = rng.standard_normal((1, 512)).astype(np.float32)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(112, 512), torch.nn.Mish(), *[m for _ in range(3) for m in (torch.nn.Linear(512, 512), torch.nn.Mish())],
        torch.nn.Linear(512, 112),
    )
    x = torch.randn(1, 112)

    def torch_call() -> torch.Tensor:
        with torch.inference_mode():
            return mlp(x)

    ddim = build(DiffusionPolicy, scheduler="ddim", num_inference_steps=10)
    return [
        Case("calibration: DDIM-10 memory floor (read the weights 10x)", "-", 0, 10, 1, weight_read_floor(ddim, 10)),
        Case("calibration: 4 numpy mat-vecs 512x512", "-", 4 * 512 * 512, 1, 1, lambda: [row @ w for w in weights]),
        Case("calibration: torch eager 4x512 Mish MLP", "-", sum(p.numel() for p in mlp.parameters()), 1, 1, torch_call),
    ]


def cases() -> list[Case]:
    specs = [
        # (row name, policy class, config overrides, network calls per chunk, deterministic)
        ("diffusion", DiffusionPolicy, {"scheduler": "ddim", "num_inference_steps": 10}, 10, True),
        ("diffusion-torch", DiffusionPolicy, {"scheduler": "ddim", "num_inference_steps": 10, "fast_inference": False}, 10, True),
        ("diffusion", DiffusionPolicy, {"scheduler": "ddpm", "num_inference_steps": 100}, 100, False),
        ("flow", FlowMatchingPolicy, {"num_steps": 1}, 1, True),
        ("flow", FlowMatchingPolicy, {"num_steps": 2}, 2, True),
        ("flow", FlowMatchingPolicy, {"num_steps": 10}, 10, True),
        ("mip", MinimumIterativePolicy, {}, 2, True),
        ("gaussian", GaussianPolicy, {}, 1, False),
        ("regression", RegressionPolicy, {}, 1, True),
        ("diffusion", DiffusionPolicy, {"backbone": "unet", "num_inference_steps": 10}, 10, True),
        ("diffusion-torch", DiffusionPolicy, {"backbone": "unet", "num_inference_steps": 10, "fast_inference": False}, 10, True),
    ]
    out = []
    for batch in BATCHES:
        obs = torch.randn(batch, 2, OBS_DIM)
        for name, policy_class, overrides, steps, deterministic in specs:
            if overrides.get("backbone") == "unet" and batch > 1:
                continue  # torch runs it (above fast_inference_max_batch): ~1 s per chunk on this CPU
            policy = build(policy_class, **overrides)
            generator = torch.Generator().manual_seed(0)
            params = sum(p.numel() for p in policy.parameters())
            exported = policy.export_for_inference()  # as eval and deploy run it
            run = (lambda p=exported, g=generator, d=deterministic, o=obs: p.predict_chunk(o, d, g))
            out.append(Case(name, policy.config.backbone, params, steps, batch, run))
            if name == "diffusion" and policy.config.backbone == "mlp" and steps == 10:
                loop = (lambda p=policy, g=generator, o=obs: diffusers_step_loop(p, o, g))
                out.append(Case("diffusers-step-loop", "mlp", params, steps, batch, loop))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-per-case", type=float, default=2.0, help="timing budget per case, over all rounds")
    parser.add_argument("--cpu-latency-us", type=int, default=None,
                        help="time under a PM QoS wake-up latency request of this many µs, as deploy holds it (root)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    calibration = calibration_cases()
    policy_cases = cases()
    all_cases = policy_cases + calibration
    for case in all_cases:  # warm up, and size each round to the time budget
        for _ in range(3):
            case.run()
        start = time.perf_counter()
        case.run()
        cost = time.perf_counter() - start
        case.calls_per_round = int(np.clip(args.seconds_per_case / ROUNDS / max(cost, 1e-6), 5, 400))
    qos = CpuLatencyRequest(args.cpu_latency_us)
    steal_meter = StealMeter()
    with qos:
        for _ in range(ROUNDS):
            for case in all_cases:
                for _ in range(case.calls_per_round):
                    start = time.perf_counter_ns()
                    case.run()
                    case.samples_ns.append(time.perf_counter_ns() - start)

    steal = steal_meter.percent()
    records = [case.record() for case in policy_cases]
    print(f"{'policy':<20} {'backbone':<8} {'params':>9} {'steps':>5} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'n':>5}")
    for case, r in zip(policy_cases, records):
        print(
            f"{r['policy']:<20} {r['backbone']:<8} {r['params']:>9} {r['steps']:>5} {r['batch']:>5} "
            f"{r['p50_ms']:>9.3f} {r['p99_ms']:>9.3f} {len(case.samples_ns):>5}"
        )
    for case in calibration:
        r = case.record()
        print(f"{case.policy}: p50 {r['p50_ms'] * 1000:.0f} us, p99 {r['p99_ms'] * 1000:.0f} us")
    if args.cpu_latency_us is not None:
        print(f"PM QoS request of {args.cpu_latency_us} µs while timing: {qos.error or 'held'}")
    print(f"host steal while timing (machine_noise.py): {'not reported' if steal is None else f'{steal:.2f}% of CPU time'}")
    by_key = {(r["policy"], r["backbone"], r["steps"], r["batch"]): r for r in records}
    for batch in BATCHES:
        ours, loop = by_key[("diffusion", "mlp", 10, batch)], by_key[("diffusers-step-loop", "mlp", 10, batch)]
        print(
            f"DDIM-10 batch {batch}: diffusers step loop / predict_chunk = "
            f"{loop['p50_ms'] / ours['p50_ms']:.2f}x at p50, {loop['p99_ms'] / ours['p99_ms']:.2f}x at p99"
        )
    unet, unet_torch = by_key[("diffusion", "unet", 10, 1)], by_key[("diffusion-torch", "unet", 10, 1)]
    print(
        f"U-Net DDIM-10 batch 1: torch policy / predict_chunk = "
        f"{unet_torch['p50_ms'] / unet['p50_ms']:.2f}x at p50, {unet_torch['p99_ms'] / unet['p99_ms']:.2f}x at p99"
    )
    print(json.dumps(records))


if __name__ == "__main__":
    main()
