"""Chunk rollouts on Ray workers (`runtime=ray`): on-policy RL collects its decisions in parallel processes or machines.

Each worker is a Ray actor that owns a vector env holding its share of the run's environments and a
copy of the modules its decision rule uses (PPO's policy and critic). One collection:
1. The learner puts the modules' current weights in Ray's object store once, as numpy arrays (plain
   data, never pickled robotune objects), and every worker loads them: the broadcast.
2. Every worker runs `steps_per_env` steps through the same `ChunkRollout` as the local runner, with
   a generator seeded by a number the learner draws from the run's generator.
3. The learner gathers the workers' decisions into one `DecisionBatch`, environment indices and the
   decision grid offset as if every environment were local.

Environment i of the run is seeded with seed + i whichever worker holds it, as in the local runner.
Sampling noise differs from the local runner's (a generator per worker instead of one for all), so
runs match it in distribution, not bit for bit.

A worker that dies (its process killed, its node lost) or does not answer within
`collect_timeout_s` is replaced by a fresh one, whose environments start new episodes, and its share
of the collection runs again; after `max_worker_restarts` replacements in one collection the run
stops with an error naming the worker.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from robotune.core import registry
from robotune.core.checkpoint import build_policy
from robotune.core.config import build_config
from robotune.core.critic import Critic
from robotune.core.policy import Policy
from robotune.core.spec import TaskSpec
from robotune.core.task import build_task
from robotune.processing.pipeline import ObservationProcessors
from robotune.processing.task import processed_task
from robotune.rollout.chunk_rollout import ChunkRollout, Decider, DecisionBatch, DecisionRule, EpisodeStats
from robotune.rollout.vector import make_vector_env

log = logging.getLogger(__name__)

BATCH_ARRAYS = ("obs", "next_obs", "reward", "discount", "terminated", "episode_end")


@dataclass
class RayRuntimeConfig:
    name: str = "ray"
    num_workers: int = 2
    address: str | None = None  # None starts a Ray instance on this machine; "auto" or "host:port" joins a cluster
    cpus_per_worker: float = 1.0  # Ray CPUs reserved per worker; also its torch threads (rounded up)
    max_worker_restarts: int = 3  # replacements of dead or silent workers allowed within one collection
    collect_timeout_s: float = 600.0  # a worker that has not answered a collection by then counts as dead

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"runtime.num_workers must be >= 1, got {self.num_workers}")
        if self.max_worker_restarts < 0 or self.collect_timeout_s <= 0:
            raise ValueError("runtime.max_worker_restarts must be >= 0 and runtime.collect_timeout_s > 0")


# ---- modules as plain data ----------------------------------------------------------------------
def module_recipe(module: nn.Module) -> dict[str, Any]:
    """What a worker needs to build an untrained copy of `module`: its plugin config and sizes (JSON-able)."""
    config = OmegaConf.to_container(OmegaConf.structured(module.config), resolve=True)
    if isinstance(module, Policy):
        return {"kind": "policy", "config": config, "spec": module.spec.to_dict()}
    if isinstance(module, Critic):
        return {"kind": "critic", "config": config, "obs_dim": module.obs_dim, "action_dim": module.action_dim}
    raise TypeError(f"runtime=ray can rebuild policies and critics in its workers, not {type(module).__name__}")


def build_module(recipe: dict[str, Any]) -> nn.Module:
    if recipe["kind"] == "policy":
        return build_policy(recipe["config"], TaskSpec.from_dict(recipe["spec"]))
    critic_class = registry.get("critic", recipe["config"]["name"])
    return critic_class(build_config(critic_class.config_class, recipe["config"], "critic"), recipe["obs_dim"], recipe["action_dim"])


def module_weights(modules: dict[str, nn.Module]) -> dict[str, dict[str, np.ndarray]]:
    return {name: {k: v.detach().cpu().numpy() for k, v in m.state_dict().items()} for name, m in modules.items()}


# ---- the worker ---------------------------------------------------------------------------------
class RolloutWorker:
    """One Ray actor: environments [env_offset, env_offset + num_envs) of the run and copies of the modules."""

    def __init__(self, task_config: dict, processors: dict, env_offset: int, num_envs: int, vector: str, obs_horizon: int,
                 act_steps: int, gamma: float, seed: int, recipes: dict[str, dict], threads: int) -> None:
        torch.set_num_threads(threads)
        registry.load_plugins()
        self.env_offset = env_offset
        task = processed_task(build_task(task_config), ObservationProcessors.from_json(processors))
        envs = make_vector_env(task, num_envs, vector)
        self.rollout = ChunkRollout(envs, obs_horizon, act_steps, gamma, seed=seed + env_offset)
        self.modules = {name: build_module(recipe).eval() for name, recipe in recipes.items()}

    def pid(self) -> int:
        return os.getpid()

    def restart(self, seed: int) -> None:
        self.rollout.restart(seed + self.env_offset)

    def collect(self, steps_per_env: int, rule: DecisionRule, weights: dict, sample_seed: int) -> dict[str, Any]:
        for name, module in self.modules.items():
            module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights[name].items()})
        generator = torch.Generator().manual_seed(sample_seed)
        batch, stats = self.rollout.collect(steps_per_env, Decider(rule, self.modules, generator))
        return {
            **{name: getattr(batch, name) for name in (*BATCH_ARRAYS, "env", "grid")},
            "payload": {k: v.cpu().numpy() for k, v in batch.payload.items()},
            "episodes": (stats.returns, stats.lengths, stats.successes),
        }


def merge_collections(parts: list[dict[str, Any]], env_offsets: list[int], device: torch.device) -> tuple[DecisionBatch, EpisodeStats]:
    """Join the workers' collections into one batch over all environments (decision ids and env indices offset)."""
    decision_offsets = np.cumsum([0] + [len(p["reward"]) for p in parts[:-1]])
    grid = np.full((max(len(p["grid"]) for p in parts), sum(p["grid"].shape[1] for p in parts)), -1, dtype=np.int64)
    for part, decisions, envs in zip(parts, decision_offsets, env_offsets):
        rows, width = part["grid"].shape
        grid[:rows, envs : envs + width] = np.where(part["grid"] >= 0, part["grid"] + decisions, -1)
    batch = DecisionBatch(
        **{name: np.concatenate([p[name] for p in parts]) for name in BATCH_ARRAYS},
        env=np.concatenate([p["env"] + envs for p, envs in zip(parts, env_offsets)]),
        grid=grid,
        payload={k: torch.from_numpy(np.concatenate([p["payload"][k] for p in parts])).to(device) for k in parts[0]["payload"]},
    )
    stats = EpisodeStats()
    for part in parts:
        returns, lengths, successes = part["episodes"]
        stats.returns += returns
        stats.lengths += lengths
        stats.successes += successes
    return batch, stats


# ---- the learner's side -------------------------------------------------------------------------
class RayChunkRollout:
    """`ChunkRollout`'s interface (collect, restart, close) over Ray workers; collect takes a `Decider`."""

    def __init__(self, task_config: dict, num_envs: int, vector: str, obs_horizon: int, act_steps: int, gamma: float,
                 seed: int, config: RayRuntimeConfig, processors: dict) -> None:
        import ray

        if num_envs < config.num_workers:
            raise ValueError(f"runtime=ray needs at least one environment per worker: num_envs {num_envs} < runtime.num_workers {config.num_workers}")
        self.ray, self.config, self.seed = ray, config, seed
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            if config.address:
                ray.init(address=config.address, log_to_driver=True)
            else:  # a private instance on this machine
                ray.init(include_dashboard=False, log_to_driver=True)
        cpus = ray.cluster_resources().get("CPU", 0)
        if config.num_workers * config.cpus_per_worker > cpus:
            raise ValueError(
                f"runtime=ray asks for {config.num_workers} workers x {config.cpus_per_worker} CPUs, but the Ray cluster has "
                f"{cpus:g} CPUs: lower runtime.num_workers or runtime.cpus_per_worker (workers that cannot be placed would wait forever)"
            )
        shares = [num_envs // config.num_workers + (w < num_envs % config.num_workers) for w in range(config.num_workers)]
        self.env_offsets = list(np.cumsum([0] + shares[:-1]).tolist())
        self.shares = shares
        self.worker_args = dict(task_config=task_config, processors=processors, vector=vector, obs_horizon=obs_horizon, act_steps=act_steps, gamma=gamma)
        self.recipes: dict[str, dict] | None = None  # set by the first collect, from the Decider's modules
        self.workers: list[Any] = []
        self.worker_restarts = 0

    def _start_worker(self, index: int, seed: int) -> Any:
        actor = self.ray.remote(RolloutWorker).options(num_cpus=self.config.cpus_per_worker, max_restarts=0)
        threads = max(1, int(np.ceil(self.config.cpus_per_worker)))
        return actor.remote(env_offset=self.env_offsets[index], num_envs=self.shares[index], seed=seed,
                            recipes=self.recipes, threads=threads, **self.worker_args)

    def restart(self, seed: int) -> None:
        self.seed = seed
        self.ray.get([worker.restart.remote(seed) for worker in self.workers])

    def collect(self, steps_per_env: int, decide: Decider) -> tuple[DecisionBatch, EpisodeStats]:
        if not isinstance(decide, Decider):
            raise TypeError("runtime=ray runs the decision rule in its workers: pass a Decider (a module-level rule and its modules), not a closure")
        if not self.workers:
            self.recipes = {name: module_recipe(module) for name, module in decide.modules.items()}
            self.workers = [self._start_worker(w, self.seed) for w in range(self.config.num_workers)]
        device = decide.generator.device
        sample_seeds = torch.randint(0, 2**62, (len(self.workers),), generator=decide.generator, device=device).tolist()
        weights = self.ray.put(module_weights(decide.modules))
        pending = [w.collect.remote(steps_per_env, decide.rule, weights, s) for w, s in zip(self.workers, sample_seeds)]
        parts = [self._gather(w, ref, steps_per_env, decide.rule, weights, sample_seeds[w]) for w, ref in enumerate(pending)]
        return merge_collections(parts, self.env_offsets, device)

    def _gather(self, index: int, ref: Any, steps_per_env: int, rule: DecisionRule, weights: Any, sample_seed: int) -> dict:
        """Worker `index`'s collection; a dead or silent worker is replaced and its share collected again."""
        from ray.exceptions import GetTimeoutError, RayActorError

        restarts = 0
        while True:
            try:
                return self.ray.get(ref, timeout=self.config.collect_timeout_s)
            except (RayActorError, GetTimeoutError) as exc:
                if restarts == self.config.max_worker_restarts:
                    raise RuntimeError(f"rollout worker {index} failed {restarts + 1} times in one collection; last: {exc}") from exc
                reason = "timed out" if isinstance(exc, GetTimeoutError) else "died"
                log.warning("rollout worker %d %s; starting a replacement and collecting its share again", index, reason)
                self.ray.kill(self.workers[index], no_restart=True)
                restarts += 1
                self.worker_restarts += 1
                self.workers[index] = self._start_worker(index, self.seed + 7919 * self.worker_restarts)  # new episodes
                ref = self.workers[index].collect.remote(steps_per_env, rule, weights, sample_seed)

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        self.workers = []
        if self.started_ray:
            self.ray.shutdown()
