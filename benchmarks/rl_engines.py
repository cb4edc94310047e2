"""robotune's PPO and SAC side by side with Stable-Baselines3, same environment, networks, hyperparameters, budget, seeds.

    python benchmarks/rl_engines.py                      # the default grid (~20-30 min on 2 cores)
    python benchmarks/rl_engines.py --seeds 0 --ppo-steps 20000 --sac-steps 2000   # a quick look

Stable-Baselines3 is a benchmark-only dependency (`pip install -e ".[bench]"`).

Both libraries run on one CPU thread, one process at a time, with SB3's defaults on both sides:
- PPO on Hopper-v5: 1 environment, 2048 steps per rollout, 10 epochs of minibatch 64, lr 3e-4,
  γ 0.99, λ 0.95, clip 0.2, value coefficient 0.5, grad-norm 0.5, no entropy bonus, per-minibatch
  advantage normalisation; separate 64x64 tanh actor and critic, orthogonal init, a state-independent
  log-std initialised at 0 (robotune: `policy=gaussian_ppo`, a one-member tanh `critic=mlp`).
- SAC on InvertedPendulum-v5: 256x256 ReLU actor and twin critics, batch 256, lr 3e-4, τ 0.005,
  γ 0.99, automatic temperature from 1.0 with target entropy −dim(a), 100 uniform-random steps
  first, one update per environment step (robotune: `policy=gaussian_sac`, `critic=mlp`).

Per run: the final deterministic policy's mean return over 10 evaluation episodes; gradient updates
per second measured over the time spent in updates only (SB3: inside `model.train()`; robotune:
`Algorithm.update_seconds`), and environment steps per second over the whole run.
The last line is a JSON list of records
{library, algo, env, env_steps, seeds, return_mean, return_std, updates_per_s, env_steps_per_s, wall_s}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

PPO_ENV, SAC_ENV = "Hopper-v5", "InvertedPendulum-v5"
EVAL_EPISODES = 10


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
        overrides = [
            "algo=ppo", "policy=gaussian_ppo", "algo.num_envs=1", "algo.rollout_steps=2048", "algo.batch_size=64",
            "algo.epochs=10", "algo.lr=3e-4", "algo.critic_lr=3e-4", "critic.num_members=1", "critic.hidden_dims=[64,64]",
            "critic.activation=tanh", "critic.orthogonal_init=true", f"algo.steps={steps // 2048}",
        ]
    else:
        overrides = ["algo=sac", "policy=gaussian_sac", f"algo.steps={steps}", "algo.learning_starts=100"]
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
        "grad_steps": algorithm.grad_steps,
        "update_seconds": algorithm.update_seconds,
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
    timer = {"seconds": 0.0}
    train = model.train

    def timed_train(*args, **kwargs):  # SB3 calls train() for the update phase of each rollout/step
        started = time.perf_counter()
        train(*args, **kwargs)
        timer["seconds"] += time.perf_counter() - started

    model.train = timed_train
    started = time.perf_counter()
    model.learn(total_timesteps=steps if algo == "sac" else (steps // 2048) * 2048)
    wall = time.perf_counter() - started
    eval_env = gym.make(env_id)
    eval_env.reset(seed=10_000 + seed)
    mean_return, _ = evaluate_policy(model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
    return {
        "return": float(mean_return),
        # SB3 counts PPO epochs in _n_updates; each epoch is ceil(n_steps / batch_size) minibatch updates
        "grad_steps": int(model._n_updates) * (-(-2048 // 64) if algo == "ppo" else 1),
        "update_seconds": timer["seconds"],
        "env_steps": int(model.num_timesteps),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ppo-steps", type=int, default=100_352)  # 49 rollouts of 2048
    parser.add_argument("--sac-steps", type=int, default=6_000)
    parser.add_argument("--algos", nargs="+", default=["ppo", "sac"], choices=["ppo", "sac"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rl_engines.json"))
    args = parser.parse_args()

    records = []
    for algo in args.algos:
        env_id, steps = (PPO_ENV, args.ppo_steps) if algo == "ppo" else (SAC_ENV, args.sac_steps)
        runs: dict[str, list[dict]] = {"robotune": [], "sb3": []}
        for seed in args.seeds:  # the libraries alternate run by run, so machine noise hits both alike
            for library, run in (("robotune", robotune_run), ("sb3", sb3_run)):
                result = run(algo, env_id, steps, seed)
                runs[library].append(result)
                print(f"{library} {algo} {env_id} seed {seed}: return {result['return']:.1f}, "
                      f"{result['grad_steps'] / result['update_seconds']:.0f} updates/s, {result['wall_s']:.0f} s", flush=True)
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
                "updates_per_s": round(sum(r["grad_steps"] for r in library_runs) / sum(r["update_seconds"] for r in library_runs), 1),
                "env_steps_per_s": round(sum(r["env_steps"] for r in library_runs) / sum(r["wall_s"] for r in library_runs), 1),
                "wall_s": round(sum(r["wall_s"] for r in library_runs), 1),
            })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2))
    print(json.dumps(records))


if __name__ == "__main__":
    main()
