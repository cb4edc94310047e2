"""RL fine-tuning of weak behaviour-cloned policies on reach_around: DPPO, residual PPO, FPO, DSRL and Gaussian PPO.

    python benchmarks/finetune.py                                   # the default grid: 5 methods x 2 seeds
    python benchmarks/finetune.py --seeds 0 --methods residual_ppo dppo --budget-scale 0.5   # a reduced run

The weak base: behaviour cloning (`algo=bc`, its default 3000 updates) on `--demos` expert
demonstrations instead of the default 200; with 5 the diffusion policy succeeds in about half of the
episodes (6 demonstrations gave 76 %, 4 gave 2 %). One base per policy type and seed: diffusion
(for DPPO, residual PPO and DSRL), flow (FPO) and the Gaussian (PPO).

Each method then runs `robotune train algo=<method> init_from=<base>` with the settings in METHODS,
evaluating `--progress-episodes` episodes every `eval_every` iterations (`env_steps_to_90` is the
first environment-step count at which that evaluation reached 90 %; null if it never did) and 50
episodes at the end (`success_after`; `success_before` is the base's own 50-episode evaluation, the
same seeds). Every command runs one at a time on one torch thread. The last line is a JSON list of
records {method, task, env_steps, env_steps_to_90, wall_s, success_before, success_after}, means
over the seeds (`env_steps_to_90` null unless every seed reached 90 %), with the per-seed runs in
`runs`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TASK = "reach_around"


@dataclass(frozen=True)
class Method:
    algo: str
    policy: str  # the base policy it fine-tunes
    steps: int  # algorithm steps (iterations for PPO variants, loop steps for DSRL) at budget scale 1
    eval_every: int  # iterations between progress evaluations
    overrides: tuple[str, ...] = ()


# Budgets and the settings that differ from each algorithm's documented defaults, chosen on seed 0
# (see the README's fine-tuning table): residual PPO with 16 environments and residual_scale 0.3
# (ResiP's 0.1 moved success by 6 points in 20k steps), DPPO on the last 5 of 10 denoising steps,
# DSRL with a small initial temperature (at 1.0 the entropy bonus dwarfs reach_around's rewards).
METHODS: dict[str, Method] = {
    "residual_ppo": Method("residual_ppo", "diffusion", steps=40, eval_every=4, overrides=("algo.num_envs=16", "algo.residual_scale=0.3")),
    "dppo": Method("dppo", "diffusion", steps=40, eval_every=4, overrides=("algo.finetuned_steps=5",)),
    "fpo": Method("fpo", "flow", steps=60, eval_every=6),
    "dsrl": Method("dsrl", "diffusion", steps=2000, eval_every=200, overrides=("algo.updates_per_step=8", "algo.init_alpha=0.05")),
    "ppo": Method("ppo_finetune", "gaussian", steps=100, eval_every=10),
}


def robotune(args: list[str], log: Path) -> float:
    """Run `robotune <args>` in a subprocess, its output to `log`; returns the wall time in seconds."""
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run([sys.executable, "-m", "robotune.cli", *args], stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        raise RuntimeError(f"robotune {' '.join(args)} failed; see {log}")
    return time.monotonic() - started


def base_run(policy: str, seed: int, demos: int, root: Path) -> Path:
    """The weak BC base for `policy` and `seed` (trained once, then reused)."""
    run_dir = root / f"bc-{policy}-demos{demos}-seed{seed}"
    if not (run_dir / "summary.json").is_file():
        robotune(
            ["train", f"policy={policy}", f"data.num_episodes={demos}", f"seed={seed}", f"data.cache_dir={root / 'data'}",
             f"run_dir={run_dir}", "logger=quiet"],
            root / f"{run_dir.name}.log",
        )
    return run_dir


def first_at(metrics_file: Path, threshold: float) -> int | None:
    """Environment steps at the first evaluation whose success rate reached `threshold`."""
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        if record.get("eval/success_rate", -1.0) >= threshold:
            return int(record["env_steps"])
    return None


def fine_tune(name: str, seed: int, base: Path, root: Path, budget_scale: float, progress_episodes: int) -> dict:
    method = METHODS[name]
    run_dir = root / f"{name}-seed{seed}"
    steps = max(1, round(method.steps * budget_scale))
    wall = robotune(
        ["train", f"algo={method.algo}", f"policy={method.policy}", f"init_from={base}", f"seed={seed}", f"run_dir={run_dir}",
         f"algo.steps={steps}", f"eval.every={method.eval_every}", f"eval.every_episodes={progress_episodes}", "eval.episodes=50",
         "logger=quiet", "resume=false", *method.overrides],
        root / f"{run_dir.name}.log",
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    before = json.loads((base / "summary.json").read_text())
    reached = first_at(run_dir / "metrics.jsonl", 0.9)
    if reached is None and summary["eval_success_rate"] >= 0.9:
        reached = summary["env_steps"]
    return {
        "seed": seed,
        "env_steps": summary["env_steps"],
        "env_steps_to_90": reached,
        "wall_s": round(wall, 1),
        "success_before": before["eval_success_rate"],
        "success_after": summary["eval_success_rate"],
        "run_dir": str(run_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--demos", type=int, default=5, help="expert demonstrations for the weak BC bases")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiplies every method's step budget")
    parser.add_argument("--progress-episodes", type=int, default=20, help="episodes per progress evaluation")
    parser.add_argument("--root", type=Path, default=Path("runs/benchmark-finetune"))
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)

    records = []
    for name in args.methods:
        runs = []
        for seed in args.seeds:
            base = base_run(METHODS[name].policy, seed, args.demos, args.root)
            run = fine_tune(name, seed, base, args.root, args.budget_scale, args.progress_episodes)
            print(json.dumps({"method": name, **run}), flush=True)
            runs.append(run)
        reached = [r["env_steps_to_90"] for r in runs]
        records.append({
            "method": name,
            "task": TASK,
            "env_steps": statistics.mean(r["env_steps"] for r in runs),
            "env_steps_to_90": statistics.mean(reached) if None not in reached else None,
            "wall_s": round(statistics.mean(r["wall_s"] for r in runs), 1),
            "success_before": statistics.mean(r["success_before"] for r in runs),
            "success_after": statistics.mean(r["success_after"] for r in runs),
            "seeds": args.seeds,
            "runs": runs,
        })
    print(json.dumps(records))


if __name__ == "__main__":
    main()
