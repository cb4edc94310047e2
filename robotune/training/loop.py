"""`robotune train`: demonstrations -> policy -> checkpoints -> evaluation, resumable at any point.

The run directory is derived from the config (task, policy, algorithm, seed) unless given, so
running the same command again after an interruption resumes from the newest checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from robotune.core import registry
from robotune.core.algorithm import Algorithm
from robotune.core.checkpoint import list_checkpoints, load_training_state, save_checkpoint
from robotune.core.config import build_config
from robotune.core.dataset import EpisodeDataset
from robotune.training.demonstrations import cached_demonstrations
from robotune.rollout.evaluation import evaluate
from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy
from robotune.training.run_logging import LoggerConfig, RunLogger, plot_learning_curve
from robotune.core.task import Task, build_task


@dataclass
class Components:
    task: Task
    dataset: EpisodeDataset
    policy: Policy
    algorithm: Algorithm


def load_dataset(cfg: DictConfig, task: Task, console: Console) -> EpisodeDataset:
    if cfg.data.path:
        dataset = EpisodeDataset.load(cfg.data.path)
    else:
        task_config = OmegaConf.to_container(cfg.task, resolve=True)
        dataset, _ = cached_demonstrations(
            task, task_config, cfg.data.num_episodes, cfg.data.seed, cfg.data.demos_per_start, cfg.data.cache_dir, console
        )
    spec = task.spec
    if (dataset.obs_dim, dataset.action_dim) != (spec.obs_dim, spec.action_dim):
        raise ValueError(
            f"dataset {dataset.source} has obs_dim {dataset.obs_dim} and action_dim {dataset.action_dim}, "
            f"but task '{spec.name}' expects {spec.obs_dim} and {spec.action_dim}"
        )
    return dataset


def build_components(cfg: DictConfig, console: Console) -> Components:
    task = build_task(cfg.task)
    dataset = load_dataset(cfg, task, console)
    policy_class = registry.get("policy", cfg.policy.name)
    policy_config = build_config(policy_class.config_class, cfg.policy, "policy")
    stats = dataset.stats()
    policy = policy_class(
        policy_config,
        task.spec,
        Normalizer(stats["obs_min"], stats["obs_max"]),
        Normalizer(stats["action_min"], stats["action_max"]),
    )
    algorithm_class = registry.get("algorithm", cfg.algo.name)
    algorithm = algorithm_class(build_config(algorithm_class.config_class, cfg.algo, "algo"), policy)
    return Components(task, dataset, policy, algorithm)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run (or resume) a training run described by `cfg`; returns the summary also written to summary.json."""
    console = Console(soft_wrap=True)  # whole lines in logs and pipes
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    parts = build_components(cfg, console)
    algo, policy = parts.algorithm, parts.policy
    sampler = parts.dataset.window_sampler(policy.config.obs_horizon, policy.config.horizon)
    batch_generator = torch.Generator().manual_seed(cfg.seed)
    logger_config = build_config(LoggerConfig, cfg.logger, "logger")

    start_step = 0
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    if checkpoints and cfg.resume:
        state = load_training_state(checkpoints[-1])
        algo.load_state_dict(state["algorithm"])
        batch_generator.set_state(state["batch_generator"])
        start_step = state["step"]
        console.print(f"Resuming [bold]{run_dir}[/] from {checkpoints[-1].name} (step {start_step})")
    elif checkpoints:
        raise FileExistsError(f"{run_dir} already holds checkpoints; pass resume=true to continue it or a new run_dir")
    console.print(
        f"Training [bold]{cfg.policy.name}[/] with [bold]{cfg.algo.name}[/] on [bold]{cfg.task.name}[/]: "
        f"{len(parts.dataset)} episodes, {parts.dataset.num_steps} steps, "
        f"{sum(p.numel() for p in policy.parameters()):,} parameters"
    )

    def checkpoint(step: int) -> Path:
        training_state = {"algorithm": algo.state_dict(), "batch_generator": batch_generator.get_state(), "step": step}
        return save_checkpoint(
            run_dir / "checkpoints", step, algo.inference_policy(), training_state, cfg, keep=cfg.keep_checkpoints
        )

    total = cfg.algo.steps
    started = time.monotonic()
    with RunLogger(run_dir, logger_config, total, start_step, console) as log:
        for step in range(start_step + 1, total + 1):
            metrics = algo.update(sampler.sample(cfg.algo.batch_size, batch_generator))
            if step % logger_config.log_every == 0 or step == total:
                log.log(step, metrics)
                log.advance(step)
            if cfg.eval.every and step % cfg.eval.every == 0 and step < total:
                result = evaluate(algo.inference_policy(), parts.task, cfg.eval.every_episodes, cfg.eval.seed, cfg.eval.num_envs)
                log.log(step, result.summary(), prefix="eval")
            if step % cfg.checkpoint_every == 0 and step < total:
                checkpoint(step)
        final = checkpoint(total) if start_step < total else checkpoints[-1]
        train_seconds = time.monotonic() - started

        result = evaluate(
            algo.inference_policy(),
            parts.task,
            episodes=cfg.eval.episodes,
            seed=cfg.eval.seed,
            num_envs=cfg.eval.num_envs,
            deterministic=cfg.eval.deterministic,
        )
        log.log(total, result.summary(), prefix="eval")
    plot_learning_curve(run_dir / "metrics.jsonl", run_dir / "learning_curve.png", f"{cfg.policy.name} on {cfg.task.name}")
    summary = {
        "task": cfg.task.name,
        "policy": cfg.policy.name,
        "algorithm": cfg.algo.name,
        "seed": cfg.seed,
        "steps": total,
        "train_seconds_this_session": round(train_seconds, 1),
        "checkpoint": str(final),
        **{f"eval_{k}": v for k, v in result.summary().items()},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    console.print(
        f"[bold green]{cfg.policy.name}[/] success rate on {cfg.task.name}: "
        f"[bold]{result.success_rate:.0%}[/] over {result.episodes} episodes "
        f"(mean return {result.mean_return:.2f}). Checkpoint: {final}"
    )
    return summary


class MultirunSummary(Callback):
    """Hydra callback: after `robotune train --multirun ...`, one table of every job's result."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.COMPLETED and isinstance(job_return.return_value, dict):
            self.rows.append(job_return.return_value)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.rows:
            return
        table = Table(title="robotune multirun summary")
        columns = ("task", "policy", "algorithm", "seed", "eval_success_rate", "eval_mean_return", "checkpoint")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in self.rows:
            table.add_row(*(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
        Console(width=160).print(table)
