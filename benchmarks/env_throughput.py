"""Environment steps per second against raw MuJoCo physics, for reach_around and robosuite Lift.

    PYTHONPATH=. python benchmarks/env_throughput.py [--seconds 3] [--tasks reach_around lift] [--cores 1 2]

For each task and process count, every process times, in turn and twice (the better run counts, since the
machine is shared):
- `raw`: `mj_step(model, data, nstep=substeps)` on the task's own compiled model, one call per control step;
- `env`: robotune's `env.step` with a trivial policy (a fixed table of seeded uniform random actions),
  resetting when an episode ends, as a rollout would;
- for robosuite, also `robosuite`: robosuite's own `env.step` with the same actions, to show what robotune's
  wrapper adds on top (`wrapper_overhead` = robosuite steps/s over robotune steps/s, minus 1).
With 2 cores the processes run at once (started together at a barrier) and their rates are summed.
The last line is a JSON list of records `{task, cores, steps_per_s, raw_physics_steps_per_s, ratio}`,
robosuite ones with `robosuite_steps_per_s` and `wrapper_overhead` as well.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable

import mujoco
import numpy as np

from robotune.core.task import build_task

TASKS = ("reach_around", "lift")
ROUNDS = 2
ACTION_TABLE = 256


def timed_rate(step: Callable[[int], None], seconds: float) -> float:
    """Calls of `step(i)` per second over about `seconds`."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            step(calls)
            calls += 1
    return calls / elapsed


def measure(task_name: str, seconds: float, barrier: mp.synchronize.Barrier | None, results: mp.Queue) -> None:
    """One process's best-of-ROUNDS rates for one task (see the module docstring)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    env = build_task({"name": task_name}).make_env()
    env.reset(seed=0)
    suite_env = getattr(env, "suite_env", None)
    if suite_env is None:
        model, substeps = env.model, env.substeps
    else:
        model = suite_env.sim.model._model
        substeps = round(suite_env.control_timestep / suite_env.model_timestep)
    raw_data = mujoco.MjData(model)
    mujoco.mj_forward(model, raw_data)
    rng = np.random.default_rng(0)
    actions = rng.uniform(env.action_space.low, env.action_space.high, size=(ACTION_TABLE, env.action_space.shape[0]))

    def raw_step(i: int) -> None:
        mujoco.mj_step(model, raw_data, nstep=substeps)

    def env_step(i: int) -> None:
        _, _, terminated, truncated, _ = env.step(actions[i % ACTION_TABLE])
        if terminated or truncated:
            env.reset()

    suite_steps = 0

    def suite_step(i: int) -> None:
        nonlocal suite_steps
        suite_env.step(actions[i % ACTION_TABLE].astype(np.float64))
        suite_steps += 1
        if suite_steps % env.max_episode_steps == 0:
            suite_env.reset()

    loops = {"raw": raw_step, "env": env_step}
    if suite_env is not None:
        loops["robosuite"] = suite_step
    for loop in loops.values():  # warm up: numba compiles robosuite's controllers on first use
        timed_rate(loop, 0.5)
    if barrier is not None:
        barrier.wait()
    best = {name: 0.0 for name in loops}
    for _ in range(ROUNDS):
        for name, loop in loops.items():
            best[name] = max(best[name], timed_rate(loop, seconds))
    env.close()
    results.put(best)


def run(task_name: str, cores: int, seconds: float) -> dict:
    context = mp.get_context("spawn")  # no inherited MuJoCo or GL state
    barrier = context.Barrier(cores) if cores > 1 else None
    results = context.Queue()
    workers = [context.Process(target=measure, args=(task_name, seconds, barrier, results)) for _ in range(cores)]
    for worker in workers:
        worker.start()
    rates = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    total = {name: float(sum(rate[name] for rate in rates)) for name in rates[0]}
    record = {
        "task": task_name,
        "cores": cores,
        "steps_per_s": round(total["env"], 1),
        "raw_physics_steps_per_s": round(total["raw"], 1),
        "ratio": round(total["env"] / total["raw"], 3),
    }
    if "robosuite" in total:
        record["robosuite_steps_per_s"] = round(total["robosuite"], 1)
        record["wrapper_overhead"] = round(total["robosuite"] / total["env"] - 1.0, 3)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per timed run")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--cores", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    records = []
    for task_name in args.tasks:
        for cores in args.cores:
            record = run(task_name, cores, args.seconds)
            print(record, flush=True)
            records.append(record)
    print(json.dumps(records))


if __name__ == "__main__":
    main()
