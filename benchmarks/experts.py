"""Success rate and return of the scripted robosuite experts, over seeded episodes.

    PYTHONPATH=. python benchmarks/experts.py [--episodes 50] [--tasks lift pick_place_can nut_assembly_square]
                                              [--noise 0.0]

Episode i is seeded with i (environment and expert), so a rerun gives the same numbers. Each task runs
with its default config (sparse reward: 1 on the success step, episodes end at success or after
`max_episode_steps`). The last line printed is a JSON list of records
`{task, episodes, success_rate, mean_return, mean_length, expert_noise}`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from robotune.core.task import build_task

TASKS = ("lift", "pick_place_can", "nut_assembly_square")


def run_expert(task_name: str, episodes: int, noise: float) -> dict:
    task = build_task({"name": task_name, "expert_noise": noise})
    env, expert = task.make_env(), task.make_expert()
    successes, returns, lengths = [], [], []
    for episode in range(episodes):
        obs, info = env.reset(seed=episode)
        expert.reset(obs, np.random.default_rng(episode))
        episode_return, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            episode_return += reward
            steps += 1
            done = terminated or truncated
        successes.append(bool(info["is_success"]))
        returns.append(episode_return)
        lengths.append(steps)
    env.close()
    return {
        "task": task_name,
        "episodes": episodes,
        "success_rate": float(np.mean(successes)),
        "mean_return": float(np.mean(returns)),
        "mean_length": float(np.mean(lengths)),
        "expert_noise": noise,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--noise", type=float, default=0.0, help="task.expert_noise for every task")
    args = parser.parse_args()

    records = []
    for task_name in args.tasks:
        start = time.perf_counter()
        record = run_expert(task_name, args.episodes, args.noise)
        records.append(record)
        print(
            f"{task_name:<22} success {record['success_rate']:6.1%}  mean return {record['mean_return']:.3f}  "
            f"mean length {record['mean_length']:.0f} steps  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    print(json.dumps(records))


if __name__ == "__main__":
    main()
