"""Success rate and return of the scripted robosuite experts, over seeded episodes.

    PYTHONPATH=. python benchmarks/experts.py [--episodes 50] [--tasks lift pick_place_can nut_assembly_square]
                                              [--noise 0.0] [--controller OSC_POSE|JOINT_POSITION] [--replay]

Episode i is seeded with i (environment and expert), so a rerun gives the same numbers. Each task runs
with its default config (sparse reward: 1 on the success step, episodes end at success or after
`max_episode_steps`) and the given `task.controller`. `--replay` then resets the environment with each
episode's seed again and replays the expert's recorded actions open loop: what a dataset of them holds.
With `--controller OSC_POSE --replay`, the OSC episodes are also relabelled with the joint positions each
step reached (plus the gripper command) and replayed open loop in a JOINT_POSITION environment, the
alternative to a joint-position expert. The last line printed is a JSON list of records
`{task, controller, episodes, success_rate, mean_return, mean_length, expert_noise}` (with `--replay`
also `replay_success_rate`, and for OSC_POSE `relabelled_replay_success_rate`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from robotune.core.task import build_task

TASKS = ("lift", "pick_place_can", "nut_assembly_square")


def run_episode(env, seed: int, actions, start=None) -> tuple[bool, float, list[np.ndarray], list[np.ndarray]]:
    """(success, return, actions taken, joint positions reached) of one episode; `actions(obs)` gives each
    action, `start(obs)` sees the first observation."""
    obs, info = env.reset(seed=seed)
    if start is not None:
        start(obs)
    episode_return, taken, reached, done = 0.0, [], [], False
    while not done:
        action = actions(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        episode_return += reward
        taken.append(action)
        reached.append(obs[:7].copy())  # joint1.pos ... joint7.pos lead the observation
        done = terminated or truncated
    return bool(info["is_success"]), episode_return, taken, reached


def replay(env, seed: int, recorded: list[np.ndarray]) -> bool:
    """Success of `recorded` actions replayed open loop from the reset with `seed` (the last one held after)."""
    queue = iter(recorded)
    return run_episode(env, seed, lambda obs: next(queue, recorded[-1]))[0]


def run_expert(task_name: str, episodes: int, noise: float, controller: str, with_replay: bool) -> dict:
    task = build_task({"name": task_name, "expert_noise": noise, "controller": controller})
    env, expert = task.make_env(), task.make_expert()
    relabel_env = None
    if with_replay and controller == "OSC_POSE":
        relabel_env = build_task({"name": task_name, "controller": "JOINT_POSITION"}).make_env()
    successes, returns, lengths, replayed, relabelled = [], [], [], [], []
    for episode in range(episodes):
        start = lambda obs: expert.reset(obs, np.random.default_rng(episode))  # noqa: E731
        success, episode_return, actions, reached = run_episode(env, episode, expert.act, start)
        successes.append(success)
        returns.append(episode_return)
        lengths.append(len(actions))
        if with_replay:
            replayed.append(replay(env, episode, actions))
        if relabel_env is not None:
            targets = [np.r_[joints, action[-1]] for joints, action in zip(reached, actions)]
            relabelled.append(replay(relabel_env, episode, targets))
    env.close()
    record = {
        "task": task_name,
        "controller": controller,
        "episodes": episodes,
        "success_rate": float(np.mean(successes)),
        "mean_return": float(np.mean(returns)),
        "mean_length": float(np.mean(lengths)),
        "expert_noise": noise,
    }
    if with_replay:
        record["replay_success_rate"] = float(np.mean(replayed))
    if relabel_env is not None:
        relabel_env.close()
        record["relabelled_replay_success_rate"] = float(np.mean(relabelled))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--noise", type=float, default=0.0, help="task.expert_noise for every task")
    parser.add_argument("--controller", default="OSC_POSE", choices=("OSC_POSE", "JOINT_POSITION"), help="task.controller")
    parser.add_argument("--replay", action="store_true", help="also replay each episode's actions open loop")
    args = parser.parse_args()

    records = []
    for task_name in args.tasks:
        start = time.perf_counter()
        record = run_expert(task_name, args.episodes, args.noise, args.controller, args.replay)
        records.append(record)
        print(
            f"{task_name:<22} success {record['success_rate']:6.1%}  mean return {record['mean_return']:.3f}  "
            f"mean length {record['mean_length']:.0f} steps  "
            + "".join(f"{key} {record[key]:6.1%}  " for key in ("replay_success_rate", "relabelled_replay_success_rate")
                      if key in record)
            + f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    print(json.dumps(records))


if __name__ == "__main__":
    main()
