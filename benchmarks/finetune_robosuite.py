"""RL fine-tuning of weak BC bases on robosuite Lift and PickPlaceCan: DSRL, FPO, residual PPO and DPPO.

    python benchmarks/finetune_robosuite.py --tasks lift --methods dsrl fpo    # the two that gain on Lift, seed 0
    python benchmarks/finetune_robosuite.py --tasks pick_place_can --methods residual_ppo

The weak bases: BC (`algo=bc`, its default 3000 updates) on a few demonstrations from the task's
scripted expert made imperfect with `task.expert_noise` (the recorder keeps the attempts that still
succeed), with episodes cut at `task.max_episode_steps` (Lift 100, Can 250: about 2.5x the noise-free
expert's 37 and 118 steps), one base per task and policy type, see TASKS. The flow bases (DSRL and
FPO) learn from more and noisier demonstrations than the diffusion ones, for the reason DSRL needs
it on reach_around (benchmarks/finetune.py): a base whose initial noise reaches the task. A method
may add robosuite's dense reward (METHODS).

Each method runs `robotune train algo=<method> policy=<its base's> init_from=<base>` with the budget and
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
class RobosuiteTask:
    """A task's settings, shared by its bases and their fine-tuning, and each policy type's base demonstrations."""

    task_overrides: tuple[str, ...]
    base_demos: dict[str, tuple[int, float]]  # policy -> (demonstrations, task.expert_noise) of its BC base


TASKS: dict[str, RobosuiteTask] = {
    "lift": RobosuiteTask(("task=lift", "task.max_episode_steps=100"), {"diffusion": (10, 0.3), "flow": (30, 0.4)}),
    "pick_place_can": RobosuiteTask(("task=pick_place_can", "task.max_episode_steps=250"), {"diffusion": (20, 0.3), "flow": (40, 0.3)}),
}

# robosuite's staged dense reward (reach, grasp, lift; 1 per step once the task is done) over whole
# episodes, for the runs that use it; success is still "the task was done at some step", as for the base.
DENSE = ("task.reward_shaping=true", "task.terminate_on_success=false")

# The settings measured on Lift (README, "robosuite Lift and Can"); Can runs the same.
METHODS: dict[str, Method] = {
    # 12 iterations of 16 environments x 256 steps (49,152 environment steps)
    "residual_ppo": Method("residual_ppo", "diffusion", steps=12, eval_every=4, overrides=(
        *DENSE, "algo.residual_scale=0.3", "algo.num_envs=16", "algo.rollout_steps=256", "algo.batch_size=128",
        "algo.critic_warmup_iterations=1")),
    # 40 iterations of 8 environments x 128 steps (40,960), sparse reward, episodes end at success
    "dppo": Method("dppo", "diffusion", steps=40, eval_every=10, overrides=("algo.finetuned_steps=5",)),
    # 20 iterations of 8 environments x 128 steps (20,480), sparse reward, episodes end at success; FPO's action
    # perturbation as on reach_around, at half its learning rate (at 1e-4, and after 20 iterations, success fell)
    "fpo": Method("fpo", "flow", steps=20, eval_every=10, overrides=("algo.perturb_action_std=0.1", "algo.lr=5e-5")),
    # 1,200 loop steps of 4 environments x 8 steps (38,400)
    "dsrl": Method("dsrl", "flow", steps=1200, eval_every=300, overrides=(
        *DENSE, "algo.updates_per_step=8", "algo.init_alpha=0.01", "critic.layer_norm=true")),
}


def base_run(task: str, policy: str, seed: int, root: Path) -> Path:
    """The weak BC base of `policy` for `task` and `seed` (trained once, then reused)."""
    demos, noise = TASKS[task].base_demos[policy]
    run_dir = root / f"bc-{task}-{policy}-demos{demos}-noise{noise:g}-seed{seed}"
    if not (run_dir / "summary.json").is_file():
        robotune(
            ["train", *TASKS[task].task_overrides, f"task.expert_noise={noise}", f"policy={policy}", f"data.num_episodes={demos}",
             f"seed={seed}", f"data.cache_dir={root / 'data'}", f"run_dir={run_dir}", "eval.video=0", "logger=quiet"],
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
        for name in args.methods:
            base = base_run(task, METHODS[name].policy, args.seed, args.root)
            record = fine_tune(task, name, args.seed, base, args.root, args.progress_episodes)
            print(json.dumps(record), flush=True)
            records.append(record)
    print(json.dumps(records))


if __name__ == "__main__":
    main()
