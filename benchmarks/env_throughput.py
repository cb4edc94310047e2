"""Environment steps per second against raw MuJoCo physics, for reach_around and robosuite Lift.

    PYTHONPATH=. python benchmarks/env_throughput.py [--seconds 3] [--tasks reach_around lift] [--cores 1 2]

For each task and process count, every process times these loops in alternating 0.25 s chunks, so that
the load of a shared machine falls on all of them alike:
- `raw`: `mj_step(model, data, nstep=substeps)` on the task's own compiled model, one call per control step
  (for reach_around with the same actions written to `data.ctrl`, so it simulates the same motion);
- `env`: robotune's `env.step` with a trivial policy (a fixed table of seeded uniform random actions),
  resetting when an episode ends, as a rollout would;
- for robosuite, also `robosuite`: robosuite's own `env.step` with the same actions.
robotune's wrapper cost on robosuite, `wrapper_overhead`, is timed inside the same `env.step` calls: the time
in robotune's `env.step` over the time in the robosuite `env.step` it calls, minus 1 (resets excluded).
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
CHUNK_SECONDS = 0.25
ACTION_TABLE = 256


def timed_calls(step: Callable[[int], None], seconds: float, first_call: int = 0) -> tuple[int, float]:
    """(calls, elapsed s) of `step(i)` for about `seconds`."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            step(first_call + calls)
            calls += 1
    return calls, elapsed


def interleaved_rates(loops: dict[str, Callable[[int], None]], seconds: float) -> dict[str, float]:
    """Calls per second of each loop, timed for `seconds` each in alternating chunks."""
    calls = {name: 0 for name in loops}
    elapsed = {name: 0.0 for name in loops}
    while min(elapsed.values()) < seconds:
        for name, loop in loops.items():
            chunk_calls, chunk_elapsed = timed_calls(loop, CHUNK_SECONDS, calls[name])
            calls[name] += chunk_calls
            elapsed[name] += chunk_elapsed
    return {name: calls[name] / elapsed[name] for name in loops}


def measure(task_name: str, seconds: float, barrier: mp.synchronize.Barrier | None, results: mp.Queue) -> None:
    """One process's rates for one task, and for robosuite the seconds inside robotune's and robosuite's step."""
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
    seconds_in = {"env.step": 0.0, "robosuite step": 0.0}

    # reach_around's actions are its actuators' position targets: drive the raw loop with the same ones, so
    # both loops simulate the same motion and contacts. robosuite's actions are not ctrl (its controller
    # computes torques), so its raw loop runs with zero torques.
    drives_ctrl = env.action_space.shape[0] == model.nu and suite_env is None

    def raw_step(i: int) -> None:
        if drives_ctrl:
            raw_data.ctrl[:] = actions[i % ACTION_TABLE]
        mujoco.mj_step(model, raw_data, nstep=substeps)

    def env_step(i: int) -> None:
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(actions[i % ACTION_TABLE])
        seconds_in["env.step"] += time.perf_counter() - start
        if terminated or truncated:
            env.reset()

    loops = {"raw": raw_step, "env": env_step}
    if suite_env is not None:
        robosuite_step = suite_env.step

        def suite_step(i: int) -> None:
            robosuite_step(actions[i % ACTION_TABLE].astype(np.float64))
            if (i + 1) % env.max_episode_steps == 0:
                suite_env.reset()

        def timed_robosuite_step(action: np.ndarray) -> tuple:
            start = time.perf_counter()
            result = robosuite_step(action)
            seconds_in["robosuite step"] += time.perf_counter() - start
            return result

        loops["robosuite"] = suite_step
        # robotune's env.step calls suite_env.step: shadow it on the instance to time robosuite's part
        suite_env.step = timed_robosuite_step
    for loop in loops.values():  # warm up: numba compiles robosuite's controllers on first use
        timed_calls(loop, 0.5)
    if barrier is not None:
        barrier.wait()
    seconds_in.update({"env.step": 0.0, "robosuite step": 0.0})
    rates = interleaved_rates(loops, seconds)
    env.close()
    results.put((rates, seconds_in))


def run(task_name: str, cores: int, seconds: float) -> dict:
    context = mp.get_context("spawn")  # no inherited MuJoCo or GL state
    barrier = context.Barrier(cores) if cores > 1 else None
    results = context.Queue()
    workers = [context.Process(target=measure, args=(task_name, seconds, barrier, results)) for _ in range(cores)]
    for worker in workers:
        worker.start()
    measured = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    total = {name: float(sum(rates[name] for rates, _ in measured)) for name in measured[0][0]}
    record = {
        "task": task_name,
        "cores": cores,
        "steps_per_s": round(total["env"], 1),
        "raw_physics_steps_per_s": round(total["raw"], 1),
        "ratio": round(total["env"] / total["raw"], 3),
    }
    if "robosuite" in total:
        record["robosuite_steps_per_s"] = round(total["robosuite"], 1)
        in_env_step = sum(seconds["env.step"] for _, seconds in measured)
        in_robosuite_step = sum(seconds["robosuite step"] for _, seconds in measured)
        record["wrapper_overhead"] = round(in_env_step / in_robosuite_step - 1.0, 4)
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
