"""robotune's PPO and SAC side by side with Stable-Baselines3, same environment, networks, hyperparameters, budget, seeds.

    python benchmarks/rl_engines.py                      # the default grid: PPO 100k and SAC 15k steps, 3 seeds
    python benchmarks/rl_engines.py --seeds 0 --ppo-steps 20000 --sac-steps 2000   # a quick look

Stable-Baselines3 is a benchmark-only dependency (`pip install -e ".[bench]"`).

Every run is its own process on one CPU thread, `--jobs` (2) at a time: the robotune and SB3 runs of a
seed side by side. SB3's defaults on both sides:
- PPO on Hopper-v5: 1 environment, 2048 steps per rollout, 10 epochs of minibatch 64, lr 3e-4,
  γ 0.99, λ 0.95, clip 0.2, value coefficient 0.5, grad-norm 0.5, no entropy bonus, per-minibatch
  advantage normalisation; separate 64x64 tanh actor and critic, orthogonal init, a state-independent
  log-std initialised at 0 (robotune: `policy=gaussian_ppo`, a one-member tanh `critic=mlp`).
- SAC on InvertedPendulum-v5: 256x256 ReLU actor and twin critics, batch 256, lr 3e-4, τ 0.005,
  γ 0.99, automatic temperature from 1.0 with target entropy −dim(a), 100 uniform-random steps
  first, one update per environment step (robotune: `policy=gaussian_sac`, `critic=mlp`).

Per run: the final deterministic policy's mean return over 10 evaluation episodes, and environment
steps per second over the whole run. Gradient updates per second are measured apart, side by side in
one process: both libraries' learners are built, fed the same amount of data, then timed in
alternating blocks of updates (PPO: one rollout's epochs; SAC: 20 updates from the replay buffer),
and the median block rate is reported with the median, min and max of robotune's block-by-block
ratio to SB3; this keeps a busy machine's noise out of the ratio. robotune is timed with its default
settings and with the faster ones of FAST_SETTINGS (PPO `algo.compile=true`, SAC
`algo.bf16_autocast=true`), each named in its record.
The last line is a JSON list of records
{library, algo, env, env_steps, seeds, return_mean, return_std, updates_per_s, env_steps_per_s, wall_s}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

PPO_ENV, SAC_ENV = "Hopper-v5", "InvertedPendulum-v5"
EVAL_EPISODES = 10
# robotune's side of the comparison: SB3's defaults in robotune's terms (the returns' runs add their
# budget, PPO's epochs and SAC's warm-up; the throughput timing its own, on the same networks)
ROBOTUNE_SETTINGS = {
    "ppo": [
        "algo=ppo", "policy=gaussian_ppo", "algo.num_envs=1", "algo.rollout_steps=2048", "algo.batch_size=64",
        "algo.lr=3e-4", "algo.critic_lr=3e-4", "critic.num_members=1", "critic.hidden_dims=[64,64]",
        "critic.activation=tanh", "critic.orthogonal_init=true",
    ],
    "sac": ["algo=sac", "policy=gaussian_sac"],
}


def robotune_run(algo: str, env_id: str, steps: int, seed: int) -> dict:
    from hydra import compose, initialize_config_module

    from robotune.configs import store_plugin_configs
    from robotune.core.registry import load_plugins
    from robotune.rollout.evaluation import evaluate
    from robotune.training.loop import build_components

    load_plugins()
    store_plugin_configs()
    common = [f"task=gymnasium", f"task.env_id={env_id}", f"seed={seed}", "torch_threads=1"]
    if algo == "ppo":
        overrides = [*ROBOTUNE_SETTINGS["ppo"], "algo.epochs=10", f"algo.steps={steps // 2048}"]
    else:
        overrides = [*ROBOTUNE_SETTINGS["sac"], f"algo.steps={steps}", "algo.learning_starts=100"]
    with TemporaryDirectory() as run_dir, initialize_config_module("robotune.configs", version_base=None):
        cfg = compose("train", overrides=[*common, *overrides, f"run_dir={run_dir}"])
        torch.set_num_threads(1)
        parts = build_components(cfg, console=None)
        algorithm = parts.algorithm
        started = time.perf_counter()
        for _ in range(cfg.algo.steps):
            algorithm.step()
        wall = time.perf_counter() - started
        result = evaluate(algorithm.inference_policy(), parts.task, episodes=EVAL_EPISODES, seed=10_000 + seed, num_envs=EVAL_EPISODES)
        algorithm.close()
    return {
        "return": result.mean_return,
        "env_steps": algorithm.env_steps,
        "wall_s": wall,
    }


def sb3_run(algo: str, env_id: str, steps: int, seed: int) -> dict:
    import gymnasium as gym
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    env = gym.make(env_id)
    model = (PPO if algo == "ppo" else SAC)("MlpPolicy", env, seed=seed, device="cpu", verbose=0)
    started = time.perf_counter()
    model.learn(total_timesteps=steps if algo == "sac" else (steps // 2048) * 2048)
    wall = time.perf_counter() - started
    eval_env = gym.make(env_id)
    eval_env.reset(seed=10_000 + seed)
    mean_return, _ = evaluate_policy(model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
    return {
        "return": float(mean_return),
        "env_steps": int(model.num_timesteps),
        "wall_s": wall,
    }


# The robotune settings timed beside the default in `--updates-only` (and in the table's update rates).
FAST_SETTINGS = {"ppo": ["algo.compile=true"], "sac": ["algo.bf16_autocast=true"]}
SAC_BLOCK = 20  # SAC updates per timed block


def update_contenders(algo: str, env_id: str, run_dir: str) -> tuple[dict[str, Callable[[], None]], int, list]:
    """SB3's learner and robotune's (default settings and each of FAST_SETTINGS[algo]), built in this process
    on the same amount of data: a block of updates of each as a callable that returns when the work is
    done (PPO: a rollout's 2 epochs; SAC: 20 updates from the replay buffer), the updates per block, and
    robotune's learners (to close)."""
    import gymnasium as gym
    from hydra import compose, initialize_config_module
    from stable_baselines3 import PPO, SAC

    from robotune.configs import store_plugin_configs
    from robotune.core.registry import load_plugins
    from robotune.training.loop import build_components

    load_plugins()
    store_plugin_configs()
    contenders, learners = {}, []
    with initialize_config_module("robotune.configs", version_base=None):
        for index, setting in enumerate(["", *FAST_SETTINGS[algo]]):
            overrides = [*ROBOTUNE_SETTINGS[algo], "algo.epochs=2" if algo == "ppo" else "algo.learning_starts=1000"]
            cfg = compose("train", overrides=[f"task=gymnasium", f"task.env_id={env_id}", *overrides, *setting.split(), f"run_dir={run_dir}/{index}"])
            learner = build_components(cfg, console=None).algorithm
            learners.append(learner)
            if algo == "ppo":
                batch, _ = learner.rollout.collect(2048, learner.decide)
                block = (lambda learner, batch: lambda: learner.learn(batch))(learner, batch)
            else:
                for _ in range(1000):
                    learner.step()

                def block(learner=learner):
                    for _ in range(SAC_BLOCK):
                        metrics = learner.update(learner.replay_batch())
                    float(metrics["critic_loss"])  # metrics are lazy tensors: finish the work before stopping the clock

            block()  # warm-up, and compilation where the setting compiles
            contenders[f"robotune ({setting})" if setting else "robotune"] = block
    if algo == "ppo":
        sb3 = PPO("MlpPolicy", gym.make(env_id), n_epochs=2, seed=0, device="cpu")
        sb3.learn(2048)
        contenders["sb3"], per_block = (lambda: sb3.train()), 2 * 32
    else:
        sb3 = SAC("MlpPolicy", gym.make(env_id), seed=0, device="cpu", learning_starts=1000)
        sb3.learn(1000)
        contenders["sb3"], per_block = (lambda: sb3.train(gradient_steps=SAC_BLOCK, batch_size=256)), SAC_BLOCK
    contenders["sb3"]()
    return contenders, per_block, learners


def alternating_block_seconds(contenders: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each contender's block in each of `rounds` rounds; a round runs every contender's block in turn,
    so that the machine's load falls on all of them alike."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run_block in contenders.items():
            started = time.perf_counter()
            run_block()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def update_throughput(algo: str, env_id: str, blocks: int = 8) -> dict[str, dict[str, float]]:
    """Gradient updates per second of the update contenders, timed in alternating blocks in this process:
    the median rate of each, and the median, min and max over blocks of its ratio to SB3's block beside it."""
    torch.set_num_threads(1)
    with TemporaryDirectory() as run_dir:
        contenders, per_block, learners = update_contenders(algo, env_id, run_dir)
        seconds = alternating_block_seconds(contenders, blocks)
        rates = {name: [per_block / elapsed for elapsed in block_seconds] for name, block_seconds in seconds.items()}
        for learner in learners:
            learner.close()
    sb3_rates = np.array(rates["sb3"])
    result = {}
    for name, r in rates.items():
        ratios = np.array(r) / sb3_rates  # each block against SB3's block beside it
        result[name] = {"updates_per_s": float(np.median(r)), "ratio_to_sb3": float(np.median(ratios)),
                        "ratio_min": float(ratios.min()), "ratio_max": float(ratios.max())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ppo-steps", type=int, default=100_352)  # 49 rollouts of 2048
    parser.add_argument("--sac-steps", type=int, default=15_000)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, each in its own process on one thread")
    parser.add_argument("--algos", nargs="+", default=["ppo", "sac"], choices=["ppo", "sac"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rl_engines.json"))
    parser.add_argument("--updates-only", action="store_true", help="only the side-by-side update throughput")
    args = parser.parse_args()

    if args.updates_only:
        load = os.getloadavg()[0]
        results = {algo: update_throughput(algo, PPO_ENV if algo == "ppo" else SAC_ENV) for algo in args.algos}
        print(json.dumps([
            {"library": library, "algo": algo, **{k: round(v, 2) for k, v in rate.items()}, "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}
            for algo, r in results.items() for library, rate in r.items()
        ]))
        return
    records = []
    # Each run in a fresh process (spawned: no torch state inherited); in the default order the two
    # libraries' runs of one seed are neighbours, so with --jobs 2 they run side by side and machine
    # noise hits both alike.
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for algo in args.algos:
            env_id, steps = (PPO_ENV, args.ppo_steps) if algo == "ppo" else (SAC_ENV, args.sac_steps)
            tasks = [(library, run, seed) for seed in args.seeds for library, run in (("robotune", robotune_run), ("sb3", sb3_run))]
            futures = [pool.submit(run, algo, env_id, steps, seed) for _, run, seed in tasks]
            runs: dict[str, list[dict]] = {"robotune": [], "sb3": []}
            for (library, _, seed), future in zip(tasks, futures):
                result = future.result()
                runs[library].append(result)
                print(f"{library} {algo} {env_id} seed {seed}: return {result['return']:.1f}, {result['wall_s']:.0f} s", flush=True)
            throughput = update_throughput(algo, env_id)
            for library, library_runs in runs.items():
                returns = [r["return"] for r in library_runs]
                records.append({
                    "library": library,
                    "algo": algo,
                    "env": env_id,
                    "env_steps": library_runs[0]["env_steps"],
                    "seeds": args.seeds,
                    "return_mean": round(statistics.fmean(returns), 2),
                    "return_std": round(float(np.std(returns)), 2),
                    "updates_per_s": round(throughput[library]["updates_per_s"], 1),
                    "env_steps_per_s": round(sum(r["env_steps"] for r in library_runs) / sum(r["wall_s"] for r in library_runs), 1),
                    "wall_s": round(sum(r["wall_s"] for r in library_runs), 1),
                })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2))
    print(json.dumps(records))


if __name__ == "__main__":
    main()
