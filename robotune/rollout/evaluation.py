"""The evaluation harness: N seeded episodes, success rate (where the task reports one), return and
normalised score (where the task defines one), policy inference batched.

Episodes run in waves of `num_envs` environments stepped in lockstep, so one policy call serves a
whole wave; episode i is reset with seed + i whatever `num_envs` is, so the result does not depend
on batching and short (crashed) episodes are not over-counted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
from omegaconf import DictConfig

from robotune.rollout.chunking import ChunkController
from robotune.core.policy import Policy
from robotune.core.task import Task, build_task


@dataclass
class EvalResult:
    episodes: int
    success_rate: float | None  # None when the task reports no `is_success`
    mean_return: float
    std_return: float
    mean_length: float
    normalized_score: float | None  # the task's normalised score of the mean return, if it has one
    successes: list[bool]
    returns: list[float]

    def summary(self) -> dict:
        d = asdict(self)
        for per_episode in ("successes", "returns"):
            d.pop(per_episode)
        return {k: v for k, v in d.items() if v is not None}


def evaluate(
    policy: Policy,
    task: Task,
    episodes: int = 50,
    seed: int = 100_000,
    num_envs: int = 10,
    deterministic: bool = True,
    ensemble_decay: float | None = None,
) -> EvalResult:
    if episodes < 1:
        raise ValueError(f"eval.episodes must be >= 1, got {episodes}")
    policy.eval()
    envs = [task.make_env() for _ in range(min(num_envs, episodes))]
    successes: list[bool] = []
    returns: list[float] = []
    reports_success = False
    lengths: list[int] = []
    for wave_start in range(0, episodes, len(envs)):
        wave = envs[: min(len(envs), episodes - wave_start)]
        controller = ChunkController(
            policy, len(wave), deterministic=deterministic, ensemble_decay=ensemble_decay, seed=seed + wave_start
        )
        obs = np.stack([env.reset(seed=seed + wave_start + i)[0] for i, env in enumerate(wave)])
        running = np.ones(len(wave), dtype=bool)
        success = np.zeros(len(wave), dtype=bool)
        total = np.zeros(len(wave))
        length = np.zeros(len(wave), dtype=int)
        while running.any():
            actions = controller.act(obs)
            for i in np.flatnonzero(running):
                obs[i], reward, terminated, truncated, info = wave[i].step(actions[i])
                total[i] += reward
                length[i] += 1
                if "is_success" in info:
                    reports_success = True
                    success[i] |= bool(info["is_success"])
                running[i] = not (terminated or truncated)
        successes += success.tolist()
        returns += total.tolist()
        lengths += length.tolist()
    for env in envs:
        env.close()
    return EvalResult(
        episodes=episodes,
        success_rate=float(np.mean(successes)) if reports_success else None,
        mean_return=float(np.mean(returns)),
        std_return=float(np.std(returns)),
        mean_length=float(np.mean(lengths)),
        normalized_score=task.normalized_score(float(np.mean(returns))),
        successes=successes,
        returns=returns,
    )


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """`robotune eval`: rebuild policy and task from the checkpoint directory alone, then evaluate."""
    from robotune.core.checkpoint import load_checkpoint

    torch.set_num_threads(cfg.torch_threads)
    checkpoint = load_checkpoint(cfg.checkpoint)
    task = build_task(checkpoint.config.task)
    result = evaluate(
        checkpoint.policy,
        task,
        episodes=cfg.episodes,
        seed=cfg.seed,
        num_envs=cfg.num_envs,
        deterministic=cfg.deterministic,
        ensemble_decay=cfg.ensemble_decay,
    )
    summary = {"checkpoint": str(checkpoint.path), **result.summary()}
    print(json.dumps(summary))
    return summary
