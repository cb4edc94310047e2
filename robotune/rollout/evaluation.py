"""The evaluation harness: N seeded episodes, success rate (where the task reports one), return and
normalised score (where the task defines one), policy inference batched.

Episodes run in waves of `num_envs` environments stepped in lockstep, so one policy call serves a
whole wave; episode i is reset with seed + i whatever `num_envs` is, so the result does not depend
on batching and short (crashed) episodes are not over-counted.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from robotune.rollout.chunking import ChunkController
from robotune.rollout.video import write_mp4
from robotune.core.policy import Policy
from robotune.core.task import Task, build_task


AGGREGATIONS = ("max", "final", "mean")


@dataclass
class EvalResult:
    episodes: int
    success_rate: float | None  # None when the task reports no `is_success`
    mean_return: float
    std_return: float
    mean_length: float
    normalized_score: float | None  # the task's normalised score of the mean return, if it has one
    info_metrics: dict[str, float]  # "<key>_<aggregation>" -> mean over episodes, for the task's info_metrics
    records: list[dict]  # one per episode: episode, seed, return, length, success, and each info metric

    @property
    def successes(self) -> list[bool]:
        return [bool(r["success"]) for r in self.records]

    @property
    def returns(self) -> list[float]:
        return [r["return"] for r in self.records]

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("records")
        d.update(d.pop("info_metrics"))
        return {k: v for k, v in d.items() if v is not None}

    def write_records(self, path: str | Path) -> None:
        """Per-episode records as JSONL, for analysis beyond the means."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("".join(json.dumps(r) + "\n" for r in self.records))


class EpisodeMetrics:
    """Folds one episode's numeric info values with the task's aggregations (max, final, mean)."""

    def __init__(self, aggregations: dict[str, str]) -> None:
        for key, how in aggregations.items():
            if how not in AGGREGATIONS:
                raise ValueError(f"info metric '{key}': aggregation must be one of {AGGREGATIONS}, got '{how}'")
        self.aggregations = aggregations
        self.values: dict[str, list[float]] = {key: [] for key in aggregations}

    def add(self, info: dict) -> None:
        for key in self.aggregations:
            if key in info:
                self.values[key].append(float(info[key]))

    def result(self) -> dict[str, float]:
        fold = {"max": max, "final": lambda v: v[-1], "mean": lambda v: sum(v) / len(v)}
        return {f"{key}_{how}": fold[how](self.values[key]) for key, how in self.aggregations.items() if self.values[key]}


def on_cpu(policy: Policy) -> Policy:
    """The policy itself when its tensors are on the CPU, else a CPU copy (training may run on a GPU)."""
    tensors = itertools.chain(policy.parameters(), policy.buffers())
    return policy if all(t.device.type == "cpu" for t in tensors) else copy.deepcopy(policy).cpu()


def evaluate(
    policy: Policy,
    task: Task,
    episodes: int = 50,
    seed: int = 100_000,
    num_envs: int = 10,
    deterministic: bool = True,
    ensemble_decay: float | None = None,
    video_episodes: int = 0,
    video_dir: str | Path | None = None,
) -> EvalResult:
    """`video_episodes`: the first N episodes are also rendered (offscreen, on the CPU) to
    `video_dir/episode_NNN.mp4`; the task must support `make_env(render_mode="rgb_array")`."""
    if episodes < 1:
        raise ValueError(f"eval.episodes must be >= 1, got {episodes}")
    if video_episodes and video_dir is None:
        raise ValueError("video episodes need a video directory")
    # The deployment path, on the CPU like `robotune eval` and deploy: weights frozen, the fast sampler where there is one.
    policy = on_cpu(policy).export_for_inference()
    envs = [task.make_env(render_mode="rgb_array") if i < video_episodes else task.make_env() for i in range(min(num_envs, episodes))]
    records: list[dict] = []
    reports_success = False
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
        metrics = [EpisodeMetrics(task.info_metrics) for _ in wave]
        frames = {i: [env.render()] for i, env in enumerate(wave) if wave_start + i < video_episodes}
        while running.any():
            actions = controller.act(obs)
            for i in np.flatnonzero(running):
                obs[i], reward, terminated, truncated, info = wave[i].step(actions[i])
                if i in frames:
                    frames[i].append(wave[i].render())
                total[i] += reward
                length[i] += 1
                metrics[i].add(info)
                if "is_success" in info:
                    reports_success = True
                    success[i] |= bool(info["is_success"])
                running[i] = not (terminated or truncated)
        for i, episode_frames in frames.items():
            fps = wave[i].metadata.get("render_fps") or task.spec.control_rate_hz
            write_mp4(episode_frames, Path(video_dir) / f"episode_{wave_start + i:03d}.mp4", fps=fps)
        for i in range(len(wave)):
            records.append({
                "episode": wave_start + i,
                "seed": seed + wave_start + i,
                "return": float(total[i]),
                "length": int(length[i]),
                "success": bool(success[i]),
                **metrics[i].result(),
            })
    for env in envs:
        env.close()
    if not reports_success:
        for record in records:
            record["success"] = None
    returns = [r["return"] for r in records]
    info_keys = sorted({k for r in records for k in r} - {"episode", "seed", "return", "length", "success"})
    return EvalResult(
        episodes=episodes,
        success_rate=float(np.mean([r["success"] for r in records])) if reports_success else None,
        mean_return=float(np.mean(returns)),
        std_return=float(np.std(returns)),
        mean_length=float(np.mean([r["length"] for r in records])),
        normalized_score=task.normalized_score(float(np.mean(returns))),
        info_metrics={k: float(np.mean([r[k] for r in records if k in r])) for k in info_keys},
        records=records,
    )


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """`robotune eval`: rebuild policy, processors and task from the checkpoint directory alone, then evaluate."""
    from robotune.core.checkpoint import load_checkpoint
    from robotune.processing.pipeline import ObservationProcessors
    from robotune.processing.task import processed_task

    torch.set_num_threads(cfg.torch_threads)
    checkpoint = load_checkpoint(cfg.checkpoint)
    task = processed_task(build_task(checkpoint.config.task), ObservationProcessors.from_meta(checkpoint.meta))
    result = evaluate(
        checkpoint.policy,
        task,
        episodes=cfg.episodes,
        seed=cfg.seed,
        num_envs=cfg.num_envs,
        deterministic=cfg.deterministic,
        ensemble_decay=cfg.ensemble_decay,
        video_episodes=cfg.video,
        video_dir=cfg.video_dir,
    )
    if cfg.records_file:
        result.write_records(cfg.records_file)
    summary = {"checkpoint": str(checkpoint.path), **result.summary()}
    print(json.dumps(summary))
    return summary
