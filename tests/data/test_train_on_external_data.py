"""A user's own demonstrations in diffusion_policy's zarr format, written with zarr as that project
writes them, train a policy with `robotune train data.path=...` and evaluate on the task."""

from __future__ import annotations

import json

import numpy as np
import zarr

from robotune.robots.reach_around.task import ReachAroundTask
from robotune.training.loop import train
from tests.helpers import compose_config, tiny_train_overrides


def write_reach_around_demos(path, episodes: int = 12) -> int:
    """Expert episodes of reach_around split into the keys a user's recorder might use:
    `data/joints` (positions, velocities), `data/goal`, `data/action`, plus `meta/episode_ends`."""
    task = ReachAroundTask()
    env, expert = task.make_env(), task.make_expert()
    obs_rows, actions, ends = [], [], []
    rng = np.random.default_rng(0)
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        expert.reset(obs, rng)
        done = False
        while not done:
            action = expert.act(obs)
            obs_rows.append(obs)
            actions.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        ends.append(len(actions))
    obs = np.asarray(obs_rows, np.float32)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("data/joints", data=obs[:, :4], chunks=(64, 4))
    root.create_array("data/goal", data=obs[:, 4:], chunks=(64, 2))
    root.create_array("data/action", data=np.asarray(actions, np.float32), chunks=(64, 2))
    root.create_array("meta/episode_ends", data=np.asarray(ends, np.int64))
    return len(ends)


def test_bc_trains_and_evaluates_from_an_imported_zarr_file(tmp_path):
    episodes = write_reach_around_demos(tmp_path / "my_demos.zarr")
    overrides = [o for o in tiny_train_overrides(tmp_path, policy="regression", steps=150) if not o.startswith("data.")]
    cfg = compose_config("train", [*overrides, f"data.path={tmp_path / 'my_demos.zarr'}", "data.obs_keys=[joints,goal]", "eval.episodes=6"])
    summary = train(cfg)
    assert summary["eval_episodes"] == 6 and "eval_success_rate" in summary
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert episodes == 12
