"""`robotune train`: one loop for behaviour cloning, on-policy, off-policy and offline RL.

    task -> [dataset] -> processors -> policy (fresh, or `init_from` a checkpoint) -> algorithm.step() x algo.steps
         -> checkpoints -> evaluation

The processors (`robotune.processing`, the `processors:` config) turn the task's observation into
the policy's; the dataset is processed once, the task's environments through a wrapper, and every
checkpoint stores them, so evaluation and deployment apply the same.

The run directory is derived from the config (task, policy, algorithm, seed) unless given, so
running the same command again after an interruption resumes from the newest checkpoint: the
algorithm's state (weights, optimisers, counters, replay-buffer position), the loop's generator
and the step are restored. Metrics are logged against the loop step, gradient steps and
environment steps.

Launched by torchrun, every process runs this loop as one rank of the run (see
`robotune/training/distributed.py`); rank 0 alone logs, writes checkpoints and evaluates.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.markup import escape

from robotune.core import registry
from robotune.core.algorithm import Algorithm, TrainingContext
from robotune.core.checkpoint import list_checkpoints, load_checkpoint, load_training_state, resolve_checkpoint, save_checkpoint
from robotune.core.config import build_config
from robotune.core.critic import Critic
from robotune.core.dataset import EpisodeDataset
from robotune.core.policy import Policy
from robotune.core.regularizer import Regularizer, build_regularizer
from robotune.core.task import Task, build_task
from robotune.data import load_dataset as load_dataset_file
from robotune.processing.normalizers import fit_normalizers
from robotune.processing.pipeline import ObservationProcessors, ProcessorsConfig
from robotune.processing.task import processed_task
from robotune.rollout.chunk_rollout import local_chunk_rollouts
from robotune.rollout.evaluation import EvalResult, evaluate
from robotune.rollout.vector import make_vector_env
from robotune.rollout.video import render_problem
from robotune.training.demonstrations import cached_demonstrations
from robotune.training.distributed import (
    SINGLE_PROCESS,
    ProcessRank,
    gather_rank_states,
    join_process_group,
    leave_process_group,
    own_rank_state,
    rank_seed,
)
from robotune.training.samplers import episode_range
from robotune.training.run_logging import LoggerConfig, RunLogger, plot_learning_curve


@dataclass
class Components:
    task: Task  # as the policy sees it, through the processors
    dataset: EpisodeDataset | None  # processed
    policy: Policy
    processors: ObservationProcessors
    algorithm: Algorithm
    generator: torch.Generator
    parent: dict | None  # the checkpoint this run was initialised from


def load_dataset(cfg: DictConfig, task: Task, console: Console | None) -> EpisodeDataset:
    if cfg.data.path:
        dataset = load_dataset_file(
            cfg.data.path, obs_keys=cfg.data.obs_keys, action_key=cfg.data.action_key, format=cfg.data.format
        )
    else:
        task_config = OmegaConf.to_container(cfg.task, resolve=True)
        dataset, _ = cached_demonstrations(
            task, task_config, cfg.data.num_episodes, cfg.data.seed, cfg.data.demos_per_start, cfg.data.cache_dir, console
        )
    if cfg.data.max_episodes is not None:
        dataset = episode_range(dataset, 0, min(cfg.data.max_episodes, len(dataset)))
    spec = task.spec
    if (dataset.obs_dim, dataset.action_dim) != (spec.obs_dim, spec.action_dim):
        raise ValueError(
            f"dataset {dataset.source} has obs_dim {dataset.obs_dim} and action_dim {dataset.action_dim}, "
            f"but task '{spec.name}' expects {spec.obs_dim} and {spec.action_dim}"
        )
    return dataset


def fresh_policy(cfg: DictConfig, task: Task, dataset: EpisodeDataset | None) -> Policy:
    """A new policy for `task` (as the policy sees it), its normalisers fitted to `dataset` (processed
    alike) as `cfg.processors.normalizer` says; without a dataset (RL from scratch), actions use the
    task's bounds and observations are left as they are."""
    policy_class = registry.get("policy", cfg.policy.name)
    policy_config = build_config(policy_class.config_class, cfg.policy, "policy")
    normalizer = build_config(ProcessorsConfig, cfg.processors, "processors").normalizer
    obs_normalizer, action_normalizer = fit_normalizers(normalizer, task.spec, dataset)
    return policy_class(policy_config, task.spec, obs_normalizer, action_normalizer)


def policy_from_checkpoint(cfg: DictConfig, task: Task) -> tuple[Policy, dict, ObservationProcessors]:
    """The trained policy of `init_from`, with its normalisers, spec and processors; the run's policy
    and processors config become its."""
    path = resolve_checkpoint(cfg.init_from)
    parent = load_checkpoint(path)
    processors = ObservationProcessors.from_meta(parent.meta)
    processors.check_task(task.spec)
    if parent.task_spec.name != task.spec.name:
        raise ValueError(
            f"init_from={cfg.init_from} was trained on task '{parent.task_spec.name}', but this run's task is '{task.spec.name}'"
        )
    if parent.config.policy.name != cfg.policy.name:
        raise ValueError(
            f"init_from={cfg.init_from} holds a '{parent.config.policy.name}' policy, but this run selects "
            f"policy={cfg.policy.name}; select policy={parent.config.policy.name} (its settings come from the checkpoint)"
        )
    with open_dict(cfg):
        cfg.policy = parent.config.policy  # the saved config must rebuild this exact policy
        cfg.processors = OmegaConf.structured(processors.config)
    policy = parent.policy.train()
    return policy, {"checkpoint": str(path), "step": parent.meta["step"], "plugins": parent.meta["plugins"]}, processors


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def chunk_rollout_factory(
    cfg: DictConfig, make_envs: Callable[..., gym.vector.VectorEnv], processors: ObservationProcessors
) -> Callable[..., Any]:
    """`TrainingContext.make_chunk_rollout` for the run's `runtime`: local, or Ray workers (imported only then),
    which rebuild the task from its config and apply the same observation processors."""
    if cfg.runtime.name == "local":
        return local_chunk_rollouts(make_envs, cfg.seed)
    if cfg.runtime.name == "ray":
        from robotune.rollout.ray_rollout import RayChunkRollout, RayRuntimeConfig

        ray_config = build_config(RayRuntimeConfig, cfg.runtime, "runtime")
        task_config = OmegaConf.to_container(cfg.task, resolve=True)
        return functools.partial(RayChunkRollout, task_config, processors=processors.to_json(), seed=cfg.seed, config=ray_config)
    raise ValueError(f"invalid config 'runtime.name': expected 'local' or 'ray', got '{cfg.runtime.name}'")


def build_components(
    cfg: DictConfig, console: Console | None, process: ProcessRank = SINGLE_PROCESS, device: torch.device | None = None
) -> Components:
    """The run's parts; with several processes, this rank's (same weights, its own seed and generator)."""
    task = build_task(cfg.task)
    algorithm_class = registry.get("algorithm", cfg.algo.name)
    if process.world_size > 1 and not algorithm_class.supports_distributed:
        raise ValueError(
            f"algo={cfg.algo.name} does not train with several processes; run it without torchrun "
            f"(this launch has {process.world_size})"
        )
    algorithm_config = build_config(algorithm_class.config_class, cfg.algo, "algo")
    dataset = None
    if algorithm_class.needs_dataset(algorithm_config):
        with process.main_first():  # rank 0 records the demonstrations that the others read from the cache
            dataset = load_dataset(cfg, task, console)
    torch.manual_seed(cfg.seed)  # weight initialisation (policy, critics, residual heads) draws from torch's global generator
    if cfg.init_from:
        policy, parent, processors = policy_from_checkpoint(cfg, task)
    else:
        config = build_config(ProcessorsConfig, cfg.processors, "processors")
        processors = ObservationProcessors(config, task.spec.obs_names, config.normalizer if dataset is not None else None)
        policy, parent = None, None
    task = processed_task(task, processors)
    dataset = processors.apply_to_dataset(dataset) if dataset is not None else None
    if policy is None:
        policy = fresh_policy(cfg, task, dataset)
    device = device or resolve_device(cfg.device)
    policy.to(device)
    seed = rank_seed(cfg.seed, process.rank)
    generator = torch.Generator(device=device).manual_seed(seed)

    def build_critic(obs_dim: int, action_dim: int) -> Critic:
        critic_class = registry.get("critic", cfg.critic.name)
        return critic_class(build_config(critic_class.config_class, cfg.critic, "critic"), obs_dim, action_dim).to(device)

    def build_regularizers(obs_dim: int, action_dim: int) -> list[Regularizer]:
        nodes = cfg.get("regularizer") or {}
        return [build_regularizer(name, node, obs_dim, action_dim).to(device) for name, node in nodes.items()]

    def make_envs(num_envs: int, mode: str = "sync") -> gym.vector.VectorEnv:
        return make_vector_env(task, num_envs, mode)

    make_rollout, rollouts = chunk_rollout_factory(cfg, make_envs, processors), []  # rollouts: to check that runtime=ray is used

    def make_chunk_rollout(*args: Any) -> Any:
        rollouts.append(make_rollout(*args))
        return rollouts[-1]

    context = TrainingContext(
        policy=policy,
        task=task,
        dataset=dataset,
        make_envs=make_envs,
        make_chunk_rollout=make_chunk_rollout,
        build_critic=build_critic,
        build_regularizers=build_regularizers,
        device=device,
        generator=generator,
        work_dir=Path(cfg.run_dir),
        seed=seed,
        rank=process.rank,
        world_size=process.world_size,
    )
    algorithm = algorithm_class(algorithm_config, context)
    if cfg.runtime.name != "local" and not rollouts:
        algorithm.close()
        raise ValueError(
            f"runtime={cfg.runtime.name} runs the rollouts of on-policy RL (algo=ppo, dppo, residual_ppo, fpo); "
            f"algo={cfg.algo.name} collects none through it: use runtime=local"
        )
    return Components(task, dataset, policy, processors, algorithm, generator, parent)


def run_evaluation(cfg: DictConfig, algo: Algorithm, task: Task, episodes: int, video_dir: Path | None = None) -> EvalResult:
    """Evaluate the algorithm's inference policy; with `video_dir`, also render `eval.video` episodes."""
    return evaluate(
        algo.inference_policy(),
        task,
        episodes=episodes,
        seed=cfg.eval.seed,
        num_envs=cfg.eval.num_envs,
        deterministic=cfg.eval.deterministic,
        video_episodes=min(cfg.eval.video, episodes) if video_dir else 0,
        video_dir=video_dir,
    )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run (or resume) a training run described by `cfg`; returns the summary also written to summary.json.

    Under torchrun this process is one rank of the run; ranks other than 0 return an empty summary.
    """
    process, device = join_process_group(resolve_device(cfg.device))
    try:
        summary = train_rank(cfg, process, device)
        # The other ranks finish before rank 0's final evaluation: all wait for it, so that no rank tears
        # down its process group while another still holds connections to it (gloo can abort then).
        process.barrier()
        return summary
    finally:
        leave_process_group()


def train_rank(cfg: DictConfig, process: ProcessRank, device: torch.device) -> dict[str, Any]:
    console = Console(soft_wrap=True, quiet=not process.is_main)  # whole lines in logs and pipes
    torch.set_num_threads(cfg.torch_threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    if checkpoints and not cfg.resume:
        raise FileExistsError(f"{run_dir} already holds checkpoints; pass resume=true to continue it or a new run_dir")
    parts = build_components(cfg, console, process, device)
    algo, policy = parts.algorithm, parts.policy
    logger_config = build_config(LoggerConfig, cfg.logger, "logger")

    start_step = 0
    if checkpoints:
        state = load_training_state(checkpoints[-1])
        algo.load_counters(state["counters"])
        algo.load_state_dict(state["algorithm"])
        parts.generator.set_state(own_rank_state(state["generator"], process.rank, process.world_size, "generator"))
        start_step = state["step"]
        console.print(f"Resuming [bold]{run_dir}[/] from {checkpoints[-1].name} (step {start_step})")
    data_note = f"{len(parts.dataset)} episodes, {parts.dataset.num_steps} steps, " if parts.dataset is not None else ""
    init_note = f" from {parts.parent['checkpoint']}" if parts.parent else ""
    console.print(
        f"Training [bold]{cfg.policy.name}[/]{init_note} with [bold]{cfg.algo.name}[/] on [bold]{cfg.task.name}[/]: "
        f"{data_note}{sum(p.numel() for p in policy.parameters()):,} policy parameters"
    )

    def checkpoint(step: int) -> Path | None:
        """Called on every rank, which all give their generator states; rank 0 writes and returns the path."""
        training_state = {
            "algorithm": algo.state_dict(),
            "counters": algo.counters(),
            "generator": gather_rank_states(parts.generator.get_state(), process.world_size),
            "step": step,
        }
        if not process.is_main:
            return None
        return save_checkpoint(
            run_dir / "checkpoints",
            step,
            algo.inference_policy(),
            training_state,
            cfg,
            keep=cfg.keep_checkpoints,
            parent=parts.parent,
            correctors=algo.action_correctors(),
            processors=parts.processors.to_json(),
        )

    total = cfg.algo.steps
    started = time.monotonic()
    if not process.is_main:
        for step in range(start_step + 1, total + 1):
            algo.step()
            if step % cfg.checkpoint_every == 0 and step < total:
                checkpoint(step)
        if start_step < total:
            checkpoint(total)
        algo.close()
        return {}
    with RunLogger(run_dir, logger_config, total, start_step, console) as log:
        best = BestCheckpoint(run_dir, cfg.eval.best_metric)  # after the logger cut metrics back to the restored step
        for step in range(start_step + 1, total + 1):
            metrics = algo.step()
            if step % logger_config.log_every == 0 or step == total:
                log.log(step, metrics, counters=algo.counters())
                log.advance(step)
            if cfg.eval.every and step % cfg.eval.every == 0 and step < total:
                result = run_evaluation(cfg, algo, parts.task, cfg.eval.every_episodes)
                log.log(step, result.summary(), prefix="eval", counters=algo.counters())
                if best.improves(result.summary()):
                    save_checkpoint(run_dir / "checkpoints" / "best", step, algo.inference_policy(), {"step": step}, cfg, keep=1,
                                    parent=parts.parent, correctors=algo.action_correctors(), processors=parts.processors.to_json())
            if step % cfg.checkpoint_every == 0 and step < total:
                checkpoint(step)
        final = checkpoint(total) if start_step < total else checkpoints[-1]
        train_seconds = time.monotonic() - started
        video_dir = run_dir / "videos" if cfg.eval.video else None
        if video_dir is not None and (problem := render_problem(parts.task)):  # videos are a default, not the run's goal
            console.print(f"[yellow]Warning: no evaluation videos: {escape(problem)}[/]")
            video_dir = None
        result = run_evaluation(cfg, algo, parts.task, cfg.eval.episodes, video_dir)
        result.write_records(run_dir / "eval_episodes.jsonl")
        log.log(total, result.summary(), prefix="eval", counters=algo.counters())
    algo.close()
    plot_learning_curve(run_dir / "metrics.jsonl", run_dir / "learning_curve.png", f"{cfg.policy.name} on {cfg.task.name}")
    summary = {
        "task": cfg.task.name,
        "policy": cfg.policy.name,
        "algorithm": cfg.algo.name,
        "seed": cfg.seed,
        "steps": total,
        **algo.counters(),
        "train_seconds_this_session": round(train_seconds, 1),
        "checkpoint": str(final),
        "init_from": parts.parent["checkpoint"] if parts.parent else None,
        **{f"eval_{k}": v for k, v in result.summary().items()},
        **best.summary(run_dir / "metrics.jsonl"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    success = f"success rate [bold]{result.success_rate:.0%}[/], " if result.success_rate is not None else ""
    console.print(
        f"[bold green]{cfg.policy.name}[/] on {cfg.task.name}: {success}mean return {result.mean_return:.2f} "
        f"over {result.episodes} episodes. Checkpoint: {final}"
    )
    return summary


class BestCheckpoint:
    """Tracks `eval.best_metric` over the periodic evaluations (higher is better).

    The best value survives a resume: it is re-read from metrics.jsonl, which the logger has
    already cut back to the restored step."""

    def __init__(self, run_dir: Path, metric: str | None) -> None:
        self.metric = metric
        self.best = float("-inf")
        if metric and (run_dir / "metrics.jsonl").exists():
            for value in self._history(run_dir / "metrics.jsonl"):
                self.best = max(self.best, value)

    def _history(self, metrics_file: Path) -> list[float]:
        key = f"eval/{self.metric}"
        records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
        return [r[key] for r in records if key in r]

    def improves(self, summary: dict[str, float]) -> bool:
        if not self.metric:
            return False
        if self.metric not in summary:
            raise ValueError(f"eval.best_metric '{self.metric}' is not reported by this evaluation; it reports {sorted(summary)}")
        if summary[self.metric] > self.best:
            self.best = summary[self.metric]
            return True
        return False

    def summary(self, metrics_file: Path) -> dict[str, Any]:
        if not self.metric:
            return {}
        history = self._history(metrics_file)[:-1]  # the periodic evaluations; the last record is the final one
        last_ten = history[-10:]
        return {
            f"best_{self.metric}": self.best if history else None,
            f"last10_mean_{self.metric}": sum(last_ten) / len(last_ten) if last_ten else None,
        }

