"""Offline RL on the generated locomotion datasets: D4RL-normalised scores and gradient steps per second.

Every method runs through `robotune train +offline=<method>_<family>` (the published defaults in
robotune/configs/offline/) with the same gradient-step budget, in subprocesses, `--jobs` at a time,
each on one torch thread. Beside them runs a faithful CORL-structured TD3+BC loop (`ReferenceTD3BC`:
separate twin critics and optimisers, default Adam, a Python loop of Polyak updates, `.item()` every
step, numpy batch indices), trained on the same normalised data with the same budget and scored the
same way: it is recorded as `method: "reference-td3bc-loop"`.

Speed is compared side by side: the reference loop's update and robotune's TD3+BC update
(`algo=offline` with `regularizer=[td3_bc]`) alternate in blocks on the same data, one thread,
2x256 networks, batch 256, robotune in float32 and with bf16 autocast; those records have
`dataset: "speed (interleaved)"` and no score.

    python benchmarks/offline_scores.py                # default grid: every method + BC + TD3 on hopper/walker2d medium, 2 seeds
    python benchmarks/offline_scores.py --full         # + halfcheetah, medium-replay, medium-expert, 3 seeds
    python benchmarks/offline_scores.py --methods td3_bc,iql --datasets hopper-medium --seeds 1 --steps 5000

The last line printed is a JSON list of {method, dataset, score_mean, score_std, grad_steps, wall_s,
grad_steps_per_s}; wall_s covers a run end to end (regularizer fits, training, evaluation).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from rl_engines import alternating_block_seconds  # noqa: E402

from robotune.data.locomotion import ENVS, generate  # noqa: E402

METHODS = ("bc", "td3", "td3_bc", "prdc", "spot", "a2pr", "rebrac", "sac_rnd", "cdsa", "iql")
REFERENCE = "reference-td3bc-loop"
# Started first, so that two jobs at a time end together: their published networks and batches make
# them 6-12x slower per step than TD3+BC (in the default grid on the 2-core development machine,
# SAC-RND 7.5-7.9, ReBRAC 14.6-15.0, A2PR 12.7-13.1 gradient steps/s against 84-92 for TD3+BC).
SLOWEST_FIRST = ("sac_rnd", "rebrac", "a2pr")
# Pre-training budgets of the fitted models, as a fraction of the gradient-step budget (the published
# 1e5 VAE steps alone would outlast a short benchmark run).
FIT_FRACTION = 0.25


# ----------------------------------------------------------------------------- the CORL-structured reference


class ReferenceActor(nn.Module):
    def __init__(self, state_dim: int, action_dim: int, max_action: float = 1.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, action_dim), nn.Tanh())
        self.max_action = max_action

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.max_action * self.net(state)


class ReferenceCritic(nn.Module):
    def __init__(self, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim + action_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, action], 1))


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    for target_param, source_param in zip(target.parameters(), source.parameters()):
        target_param.data.copy_((1 - tau) * target_param.data + tau * source_param.data)


class ReferenceTD3BC:
    """CORL's td3_bc.py TD3_BC trainer, in its structure: two critics, three optimisers, a Python soft update."""

    def __init__(self, state_dim: int, action_dim: int, alpha: float = 2.5, discount: float = 0.99, tau: float = 0.005,
                 policy_noise: float = 0.2, noise_clip: float = 0.5, policy_freq: int = 2) -> None:
        self.actor = ReferenceActor(state_dim, action_dim)
        self.actor_target = copy.deepcopy(self.actor)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=3e-4)
        self.critic_1, self.critic_2 = ReferenceCritic(state_dim, action_dim), ReferenceCritic(state_dim, action_dim)
        self.critic_1_target, self.critic_2_target = copy.deepcopy(self.critic_1), copy.deepcopy(self.critic_2)
        self.critic_1_optimizer = torch.optim.Adam(self.critic_1.parameters(), lr=3e-4)
        self.critic_2_optimizer = torch.optim.Adam(self.critic_2.parameters(), lr=3e-4)
        self.alpha, self.discount, self.tau = alpha, discount, tau
        self.policy_noise, self.noise_clip, self.policy_freq = policy_noise, noise_clip, policy_freq
        self.total_it = 0

    def train(self, batch: list[torch.Tensor]) -> dict[str, float]:
        log_dict = {}
        self.total_it += 1
        state, action, reward, next_state, done = batch
        not_done = 1 - done
        with torch.no_grad():
            noise = (torch.randn_like(action) * self.policy_noise).clamp(-self.noise_clip, self.noise_clip)
            next_action = (self.actor_target(next_state) + noise).clamp(-1.0, 1.0)
            target_q = torch.min(self.critic_1_target(next_state, next_action), self.critic_2_target(next_state, next_action))
            target_q = reward + not_done * self.discount * target_q
        current_q1, current_q2 = self.critic_1(state, action), self.critic_2(state, action)
        critic_loss = F.mse_loss(current_q1, target_q) + F.mse_loss(current_q2, target_q)
        log_dict["critic_loss"] = critic_loss.item()
        self.critic_1_optimizer.zero_grad()
        self.critic_2_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_1_optimizer.step()
        self.critic_2_optimizer.step()
        if self.total_it % self.policy_freq == 0:
            pi = self.actor(state)
            q = self.critic_1(state, pi)
            lmbda = self.alpha / q.abs().mean().detach()
            actor_loss = -lmbda * q.mean() + F.mse_loss(pi, action)
            log_dict["actor_loss"] = actor_loss.item()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            self.actor_optimizer.step()
            soft_update(self.critic_1_target, self.critic_1, self.tau)
            soft_update(self.critic_2_target, self.critic_2, self.tau)
            soft_update(self.actor_target, self.actor, self.tau)
        return log_dict


class ReferenceBuffer:
    """CORL's ReplayBuffer.sample: numpy indices into tensors, rewards and dones as (B, 1)."""

    def __init__(self, fields: dict[str, torch.Tensor]) -> None:
        self.fields = fields
        self.size = len(fields["reward"])

    def sample(self, batch_size: int) -> list[torch.Tensor]:
        indices = np.random.randint(0, self.size, size=batch_size)
        f = self.fields
        return [f["obs"][indices], f["action"][indices], f["reward"][indices][:, None], f["next_obs"][indices], f["done"][indices][:, None]]


# ----------------------------------------------------------------------------- data and robotune's engine in-process


def compose_train_config(overrides: list[str]):
    from hydra import compose, initialize_config_module

    from robotune.configs import store_plugin_configs
    from robotune.core.registry import load_plugins

    load_plugins()
    store_plugin_configs()
    with initialize_config_module("robotune.configs", version_base=None):
        return compose("train", overrides=overrides)


def engine_and_buffer(dataset_path: Path, seed: int, bf16_autocast: bool = False):
    """robotune's TD3+BC engine on the dataset, and the reference buffer over the same normalised transitions."""
    from robotune.core.algorithm import TrainingContext
    from robotune.core.regularizer import RegularizerConfig
    from robotune.data import load_dataset
    from robotune.plugins.actor_critic import OfflineActorCritic, OfflineActorCriticConfig
    from robotune.plugins.ensemble_critic import EnsembleCritic, EnsembleCriticConfig
    from robotune.plugins.td3_bc import TD3BCRegularizer
    from robotune.robots.gymnasium_task import GymnasiumTask, GymnasiumTaskConfig
    from robotune.training.loop import fresh_policy

    dataset = load_dataset(dataset_path)
    family = dataset_path.name.split("-")[0]
    cfg = compose_train_config([f"+offline=td3_bc_{family}"])
    task = GymnasiumTask(GymnasiumTaskConfig(name="gymnasium", env_id=ENVS[family].env_id))
    torch.manual_seed(seed)
    policy = fresh_policy(cfg, task, dataset)
    context = TrainingContext(
        policy=policy, task=task, dataset=dataset, make_envs=None, make_chunk_rollout=None,
        build_critic=lambda o, a: EnsembleCritic(EnsembleCriticConfig(name="mlp", hidden_dims=(256, 256)), o, a),
        build_regularizers=lambda o, a: [TD3BCRegularizer(RegularizerConfig(name="td3_bc"), o, a)],
        device=torch.device("cpu"), generator=torch.Generator().manual_seed(seed), work_dir=Path(tempfile.mkdtemp()), seed=seed,
    )
    engine = OfflineActorCritic(OfflineActorCriticConfig(name="offline", q_weight=2.5, normalize_q=True, bf16_autocast=bf16_autocast), context)
    fields = dict(engine.data.fields)
    fields["done"] = 1 - fields["bootstrap"] / engine.config.gamma
    return engine, ReferenceBuffer(fields), policy


def evaluate_reference(actor: ReferenceActor, policy, family: str, episodes: int) -> list[float]:
    """Deterministic episodes seeded as robotune eval seeds them; D4RL-normalised scores."""
    env = gym.make(ENVS[family].env_id)
    scores = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=100000 + episode)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                obs_norm = policy.obs_normalizer.normalize(torch.as_tensor(obs, dtype=torch.float32)[None])
                action = policy.action_normalizer.unnormalize(actor(obs_norm))[0].numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        scores.append(float(ENVS[family].normalised(total)))
    env.close()
    return scores


def run_reference(dataset_path: Path, seed: int, steps: int, episodes: int) -> dict:
    torch.set_num_threads(1)
    started = time.perf_counter()
    _, buffer, policy = engine_and_buffer(dataset_path, seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    trainer = ReferenceTD3BC(policy.obs_dim, policy.action_dim)
    train_started = time.perf_counter()
    for _ in range(steps):
        trainer.train(buffer.sample(256))
    train_seconds = time.perf_counter() - train_started
    scores = evaluate_reference(trainer.actor.eval(), policy, dataset_path.name.split("-")[0], episodes)
    return {"score": float(np.mean(scores)), "grad_steps": steps, "train_s": train_seconds, "wall_s": time.perf_counter() - started}


def speed_contenders(dataset_path: Path, block: int) -> dict[str, Callable[[], None]]:
    """A block of `block` updates of the reference loop and of robotune's TD3+BC (float32, and with bf16
    autocast), each a callable that returns when the work is done."""
    engine, buffer, policy = engine_and_buffer(dataset_path, seed=0)
    engine_bf16, _, _ = engine_and_buffer(dataset_path, seed=0, bf16_autocast=True)
    trainer = ReferenceTD3BC(policy.obs_dim, policy.action_dim)

    def robotune_block(engine) -> None:
        for _ in range(block):
            metrics = engine.step()
        float(metrics["critic_loss"])  # the engine's metrics are lazy tensors: finish the work before stopping the clock

    return {
        REFERENCE: lambda: [trainer.train(buffer.sample(256)) for _ in range(block)],
        "td3_bc": lambda: robotune_block(engine),
        "td3_bc (bf16 autocast)": lambda: robotune_block(engine_bf16),
    }


def interleaved_speed(dataset_path: Path, rounds: int, block: int) -> dict[str, float]:
    """Gradient steps/s of the speed contenders, alternating blocks of `block` updates so that machine load
    falls on all of them alike."""
    torch.set_num_threads(1)
    seconds = alternating_block_seconds(speed_contenders(dataset_path, block), rounds + 1)
    # round 0 warms up allocators and kernels and is not counted
    return {name: rounds * block / sum(block_seconds[1:]) for name, block_seconds in seconds.items()}


# ----------------------------------------------------------------------------- robotune runs


def run_robotune(method: str, dataset_path: Path, seed: int, steps: int, episodes: int, work: Path) -> dict:
    family = dataset_path.name.split("-")[0]
    run_dir = work / f"{method}-{dataset_path.stem}-seed{seed}"
    fit_steps = max(1, int(FIT_FRACTION * steps))
    fits = {
        "spot": [f"regularizer.spot.vae_steps={fit_steps}"],
        "sac_rnd": [f"regularizer.sac_rnd.rnd_steps={min(1000, fit_steps)}"],
        "cdsa": [f"regularizer.cdsa.score_steps={fit_steps}"],
    }
    command = [
        sys.executable, "-m", "robotune.cli", "train", f"+offline={method}_{family}", f"data.path={dataset_path}", f"algo.steps={steps}",
        f"seed={seed}", f"run_dir={run_dir}", "resume=false", f"eval.episodes={episodes}", "eval.num_envs=1", "eval.video=0", "logger=quiet",
        f"checkpoint_every={steps}", "torch_threads=1", *fits.get(method, []),
    ]
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "score": summary["eval_normalized_score"], "grad_steps": summary["grad_steps"],
        "train_s": summary["train_seconds_this_session"], "wall_s": time.perf_counter() - started,
    }


def record(method: str, dataset: str, runs: list[dict]) -> dict:
    scores = [r["score"] for r in runs]
    steps, train_s = sum(r["grad_steps"] for r in runs), sum(r["train_s"] for r in runs)
    return {
        "method": method, "dataset": dataset, "score_mean": round(float(np.mean(scores)), 2), "score_std": round(float(np.std(scores)), 2),
        "grad_steps": runs[0]["grad_steps"], "wall_s": round(sum(r["wall_s"] for r in runs), 1),
        "grad_steps_per_s": round(steps / train_s, 1), "seeds": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="add halfcheetah, medium-replay and medium-expert, 3 seeds")
    parser.add_argument("--methods", default=",".join(METHODS) + "," + REFERENCE)
    parser.add_argument("--datasets", default=None, help="comma-separated env-level names (default: the grid)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=4_000, help="gradient steps per run (the default grid's budget; see the README)")
    parser.add_argument("--dataset-steps", type=int, default=100_000, help="environment steps per generated dataset")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--speed-rounds", type=int, default=6)
    parser.add_argument("--speed-block", type=int, default=250)
    parser.add_argument("--work-dir", type=Path, default=REPOSITORY / "runs" / "offline_scores")
    args = parser.parse_args()

    envs = ("hopper", "walker2d", "halfcheetah") if args.full else ("hopper", "walker2d")
    levels = ("medium", "medium-replay", "medium-expert") if args.full else ("medium",)
    datasets = args.datasets.split(",") if args.datasets else [f"{e}-{lv}" for e in envs for lv in levels]
    seeds = args.seeds or (3 if args.full else 2)
    methods = args.methods.split(",")
    paths = {}
    for name in datasets:
        env, level = name.split("-", 1)
        _, paths[name] = generate(env, level, args.dataset_steps, seed=0, out_dir=REPOSITORY / "data" / "locomotion")
    args.work_dir.mkdir(parents=True, exist_ok=True)

    records = []
    if REFERENCE in methods:
        speeds = interleaved_speed(paths[datasets[0]], args.speed_rounds, args.speed_block)
        steps = args.speed_rounds * args.speed_block
        for method, speed in speeds.items():
            records.append({"method": method, "dataset": "speed (interleaved)", "score_mean": None, "score_std": None,
                            "grad_steps": steps, "wall_s": round(steps / speed, 1), "grad_steps_per_s": round(speed, 1)})
        print("interleaved, 1 thread, 2x256, batch 256: " + ", ".join(
            f"{name} {speed:.1f} steps/s ({speed / speeds[REFERENCE]:.2f}x)" for name, speed in speeds.items()), flush=True)

    jobs = [(m, d, s) for d in datasets for m in methods for s in range(seeds)]
    jobs.sort(key=lambda job: SLOWEST_FIRST.index(job[0]) if job[0] in SLOWEST_FIRST else len(SLOWEST_FIRST))
    started = time.perf_counter()

    def run(job: tuple[str, str, int]) -> tuple[tuple[str, str, int], dict]:
        method, dataset, seed = job
        if method == REFERENCE:
            out = run_reference(paths[dataset], seed, args.steps, args.episodes)
        else:
            out = run_robotune(method, paths[dataset], seed, args.steps, args.episodes, args.work_dir)
        print(f"{method:>22} {dataset:>22} seed {seed}: score {out['score']:6.1f}, {out['grad_steps'] / out['train_s']:7.1f} steps/s, "
              f"{out['wall_s']:6.1f} s (total {time.perf_counter() - started:7.1f} s)", flush=True)
        return job, out

    with ThreadPoolExecutor(args.jobs) as pool:  # the reference runs in this process; robotune runs are subprocesses
        results = dict(pool.map(run, jobs))
    for dataset in datasets:
        for method in methods:
            records.append(record(method, dataset, [results[(method, dataset, s)] for s in range(seeds)]))
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    print(json.dumps(records))


if __name__ == "__main__":
    main()
