"""Record demonstrations from a task's scripted expert, cached on disk by what produced them."""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path

import numpy as np
from rich.console import Console

from robotune.core.dataset import Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes
from robotune.core.task import Task
from robotune.data import load_dataset, save_dataset


def record_demonstrations(
    task: Task, num_episodes: int, seed: int, demos_per_start: int = 1, successful_only: bool = True
) -> EpisodeDataset:
    """Run the expert for `num_episodes` episodes, `demos_per_start` of them from each start state.

    Start j is the environment reset with seed + j. Several demonstrations from one start are how
    human datasets look, and they are what makes a multimodal expert's data genuinely ambiguous:
    the same observations lead to different, equally good actions. With `successful_only`, failed
    attempts are skipped (at most 3x as many attempts as episodes).
    """
    expert = task.make_expert()
    if expert is None:
        raise ValueError(f"task '{task.spec.name}' has no scripted expert; give a dataset file in data.path")
    if demos_per_start < 1:
        raise ValueError(f"data.demos_per_start must be >= 1, got {demos_per_start}")
    env = task.make_env()
    rng = np.random.default_rng(seed)
    episodes: list[Episode] = []
    successes: list[bool] = []
    for attempt in range(3 * num_episodes):
        if len(episodes) == num_episodes:
            break
        obs, _ = env.reset(seed=seed + attempt // demos_per_start)
        expert.reset(obs, rng)
        steps: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "terminated", "truncated")}
        success = False
        while True:
            action = np.asarray(expert.act(obs), dtype=np.float32)
            next_obs, reward, terminated, truncated, info = env.step(action)
            for key, value in zip(steps, (obs, action, reward, terminated, truncated)):
                steps[key].append(value)
            obs = next_obs
            success = success or bool(info.get("is_success", False))
            if terminated or truncated:
                break
        if success or not successful_only:
            successes.append(success)
            episodes.append(
                Episode(
                    obs=np.asarray(steps["obs"], dtype=np.float32),
                    action=np.asarray(steps["action"], dtype=np.float32),
                    reward=np.asarray(steps["reward"], dtype=np.float32),
                    terminated=np.asarray(steps["terminated"], dtype=bool),
                    truncated=np.asarray(steps["truncated"], dtype=bool),
                    final_obs=np.asarray(obs, dtype=np.float32),  # after the last action, for bootstrapping
                )
            )
    env.close()
    if len(episodes) < num_episodes:
        raise RuntimeError(
            f"the expert of task '{task.spec.name}' succeeded in only {len(episodes)} of {3 * num_episodes} episodes"
        )
    metadata = {
        "provenance": {"generator": "robotune.training.demonstrations", "source": None, "task": task.spec.name, "seed": seed},
        "episode_success": successes,
    }
    return concatenate_episodes(episodes, source=f"<expert demonstrations of {task.spec.name}>", metadata=metadata)


def cached_demonstrations(
    task: Task,
    task_config: dict,
    num_episodes: int,
    seed: int,
    demos_per_start: int,
    cache_dir: str | Path,
    console: Console | None = None,
) -> tuple[EpisodeDataset, Path]:
    """Load demonstrations from the cache, or record and cache them.

    The key covers everything that shapes them, the source and assets of the task's package
    included (see `task_source_digest`), so editing the expert, the environment or its MJCF never
    silently reuses stale demonstrations.
    """
    task_source = task_source_digest(type(task))
    key_source = json.dumps(
        {
            "task": task_config,
            "task_source": task_source,
            "episodes": num_episodes,
            "seed": seed,
            "demos_per_start": demos_per_start,
            # bumped when what is recorded changes (2: episodes keep their final observation)
            "recorder_version": 2,
        }, sort_keys=True
    )
    key = hashlib.sha256(key_source.encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"{task.spec.name}-demos-{num_episodes}-seed{seed}-{key}.safetensors"
    if path.exists():
        return load_dataset(path), path
    if console:
        console.print(f"Recording {num_episodes} expert demonstrations for [bold]{task.spec.name}[/] -> {path}")
    dataset = record_demonstrations(task, num_episodes, seed, demos_per_start)
    save_dataset(dataset, path, metadata=json.loads(key_source))
    return dataset, path


# Files that can shape a task's demonstrations: code, and the models and configs it loads.
TASK_SOURCE_SUFFIXES = (".py", ".xml", ".urdf", ".yaml", ".yml")


def task_source_digest(task_class: type) -> str:
    """A hash of every source and asset file in the package directory of the task's module.

    A task's environment, expert and MJCF usually live in sibling files of the task class (as
    `robotune/robots/reach_around/` does), so hashing the class's own file alone missed edits to
    them. A task module outside any package has only its own file hashed.
    """
    module_file = Path(inspect.getfile(task_class))
    root = module_file.parent
    files = [module_file]
    if sys.modules[task_class.__module__].__package__:
        files = sorted(p for p in root.rglob("*") if p.suffix in TASK_SOURCE_SUFFIXES and p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(root)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
