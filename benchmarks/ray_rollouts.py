"""Environment steps per second of PPO's rollouts on Ray workers (`runtime=ray`), beside the local runner.

    python benchmarks/ray_rollouts.py [--policy diffusion] [--num-envs 8] [--rollout-steps 256] [--repeats 3]

Each configuration collects `--rollout-steps` steps in each of `--num-envs` reach_around environments with
PPO's own decision rule (`robotune.plugins.ppo.sample_decisions`: the policy samples a chunk, the critic
values the window), as one PPO iteration does, and is timed from the weight broadcast to the gathered batch.
Worker start-up is timed apart (`startup_s`) and one warm-up collection runs before the timed ones. The
configurations take turns, repeat by repeat, so that a shared machine's load falls on all of them alike.
The last line is a JSON list of records `{runtime, workers, env_steps_per_s, ...}`: the local runner
(workers 0) and Ray with each `--workers` count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import ray
import torch

from machine_noise import StealMeter
from offline_scores import compose_train_config
from robotune.core import registry
from robotune.core.config import build_config
from robotune.core.task import build_task
from robotune.plugins.ppo import sample_decisions
from robotune.processing.pipeline import ObservationProcessors
from robotune.rollout.chunk_rollout import ChunkRollout, Decider
from robotune.rollout.ray_rollout import RayChunkRollout, RayRuntimeConfig
from robotune.rollout.vector import make_vector_env
from robotune.training.loop import fresh_policy

TASK = {"name": "reach_around"}
GAMMA, SEED = 0.99, 0


def build_decider(policy_name: str) -> Decider:
    cfg = compose_train_config([f"policy={policy_name}", "algo=ppo"])
    torch.manual_seed(SEED)
    policy = fresh_policy(cfg, build_task(TASK), None).eval()
    critic_class = registry.get("critic", cfg.critic.name)
    critic = critic_class(build_config(critic_class.config_class, cfg.critic, "critic"), policy.config.obs_horizon * policy.obs_dim, 0)
    return Decider(sample_decisions, {"policy": policy, "critic": critic}, torch.Generator().manual_seed(SEED))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="diffusion", help="a policy with a likelihood: diffusion (DPPO's rollouts), gaussian, flow")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--rollout-steps", type=int, default=256, help="environment steps per environment per collection")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    decide = build_decider(args.policy)
    pc = decide.modules["policy"].config

    # every configuration's workers stay up, though only one configuration collects at a time
    ray.init(num_cpus=sum(args.workers), include_dashboard=False, log_to_driver=False)
    rollouts, startup_s = {}, {}
    for workers in [0, *args.workers]:
        start = time.perf_counter()
        if workers == 0:
            envs = make_vector_env(build_task(TASK), args.num_envs, "sync")
            rollouts[workers] = ChunkRollout(envs, pc.obs_horizon, pc.act_steps, GAMMA, seed=SEED)
        else:
            config = RayRuntimeConfig(num_workers=workers)
            processors = ObservationProcessors.identity(build_task(TASK).spec.obs_names).to_json()
            rollouts[workers] = RayChunkRollout(TASK, args.num_envs, "sync", pc.obs_horizon, pc.act_steps, GAMMA, SEED, config, processors)
        rollouts[workers].collect(args.rollout_steps, decide)  # warm-up (and, on Ray, the workers' start)
        startup_s[workers] = time.perf_counter() - start

    steal = StealMeter()
    times: dict[int, list[float]] = {workers: [] for workers in rollouts}
    for _ in range(args.repeats):
        for workers, rollout in rollouts.items():
            start = time.perf_counter()
            rollout.collect(args.rollout_steps, decide)
            times[workers].append(time.perf_counter() - start)
    for rollout in rollouts.values():
        rollout.close()
    ray.shutdown()

    env_steps = args.num_envs * args.rollout_steps
    records = [
        {
            "runtime": "local" if workers == 0 else "ray",
            "workers": workers,
            "policy": args.policy,
            "num_envs": args.num_envs,
            "env_steps_per_collection": env_steps,
            "env_steps_per_s": env_steps / statistics.median(seconds),
            "collect_s": [round(s, 3) for s in seconds],
            "startup_s": round(startup_s[workers], 2),
            "host_steal_percent": steal.percent(),
        }
        for workers, seconds in times.items()
    ]
    print(json.dumps(records))


if __name__ == "__main__":
    main()
