"""RL fine-tuning of weak diffusion BC bases on robosuite Lift and PickPlaceCan: residual PPO, DPPO and DSRL.

    python benchmarks/finetune_robosuite.py --tasks lift                     # the three methods on Lift, seed 0
    python benchmarks/finetune_robosuite.py --tasks pick_place_can --methods residual_ppo

The weak base: diffusion BC (`algo=bc`, its default 3000 updates) on a few demonstrations from the
task's scripted expert made imperfect with `task.expert_noise` (the recorder keeps the attempts that
still succeed), with episodes cut at `task.max_episode_steps` (Lift 100, Can 250: about 2.5x the
noise-free expert's 37 and 118 steps), see TASKS. Base and fine-tuning share these task settings;
a method may add robosuite's dense reward (METHODS).

Each method runs `robotune train algo=<method> policy=diffusion init_from=<base>` with the budget and
settings in METHODS, evaluating `--progress-episodes` episodes every `eval_every` steps
(`env_steps_to_90`: the first environment-step count at which that evaluation reached 90 %, null if
none did) and 50 episodes at the end (`success_after`; `success_before` is the base's own 50-episode
evaluation, the same seeds). Every command runs one at a time on one torch thread. The last line is a
JSON list of records {method, task, env_steps, env_steps_to_90, wall_s, success_before, success_after}.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from finetune import Method, robotune, run_record


@dataclass(frozen=True)
class RobosuiteBase:
    """How the weak base of one task is made: task overrides and the number of demonstrations."""

    task_overrides: tuple[str, ...]
    demos: int


TASKS: dict[str, RobosuiteBase] = {
    "lift": RobosuiteBase(("task=lift", "task.expert_noise=0.3", "task.max_episode_steps=100"), demos=10),
    "pick_place_can": RobosuiteBase(("task=pick_place_can", "task.expert_noise=0.3", "task.max_episode_steps=250"), demos=20),
}

# robosuite's staged dense reward (reach, grasp, lift; 1 per step once the task is done) over whole
# episodes, for the runs that use it; success is still "the task was done at some step", as for the base.
DENSE = ("task.reward_shaping=true", "task.terminate_on_success=false")

# The settings measured on Lift (README, "robosuite Lift and Can"); Can runs the same (DPPO not measured there).
METHODS: dict[str, Method] = {
    # 12 iterations of 16 environments x 256 steps (49,152 environment steps)
    "residual_ppo": Method("residual_ppo", "diffusion", steps=12, eval_every=4, overrides=(
        *DENSE, "algo.residual_scale=0.3", "algo.num_envs=16", "algo.rollout_steps=256", "algo.batch_size=128",
        "algo.critic_warmup_iterations=1")),
    # 40 iterations of 8 environments x 128 steps (40,960), sparse reward, episodes end at success
    "dppo": Method("dppo", "diffusion", steps=40, eval_every=10, overrides=("algo.finetuned_steps=5",)),
    # 1,200 loop steps of 4 environments x 8 steps (38,400)
    "dsrl": Method("dsrl", "diffusion", steps=1200, eval_every=300, overrides=(
        *DENSE, "algo.updates_per_step=8", "algo.init_alpha=0.01")),
}


def base_run(task: str, seed: int, root: Path) -> Path:
    """The weak diffusion BC base for `task` and `seed` (trained once, then reused)."""
    base = TASKS[task]
    run_dir = root / f"bc-{task}-demos{base.demos}-seed{seed}"
    if not (run_dir / "summary.json").is_file():
        robotune(
            ["train", *base.task_overrides, "policy=diffusion", f"data.num_episodes={base.demos}", f"seed={seed}",
             f"data.cache_dir={root / 'data'}", f"run_dir={run_dir}", "eval.video=0", "logger=quiet"],
            root / f"{run_dir.name}.log",
        )
    return run_dir


def fine_tune(task: str, name: str, seed: int, base: Path, root: Path, progress_episodes: int) -> dict:
    method = METHODS[name]
    run_dir = root / f"{task}-{name}-seed{seed}"
    wall = robotune(
        ["train", *TASKS[task].task_overrides, f"algo={method.algo}", f"policy={method.policy}", f"init_from={base}",
         f"seed={seed}", f"run_dir={run_dir}", f"algo.steps={method.steps}", f"eval.every={method.eval_every}",
         f"eval.every_episodes={progress_episodes}", "eval.episodes=50", "eval.video=0", "logger=quiet", "logger.log_every=1",
         "resume=false", *method.overrides],
        root / f"{run_dir.name}.log",
    )
    return {"method": name, "task": task, "seed": seed, **run_record(run_dir, base, wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress-episodes", type=int, default=20, help="episodes per progress evaluation")
    parser.add_argument("--root", type=Path, default=Path("runs/benchmark-finetune-robosuite"))
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)

    records = []
    for task in args.tasks:
        base = base_run(task, args.seed, args.root)
        for name in args.methods:
            record = fine_tune(task, name, args.seed, base, args.root, args.progress_episodes)
            print(json.dumps(record), flush=True)
            records.append(record)
    print(json.dumps(records))


if __name__ == "__main__":
    main()
