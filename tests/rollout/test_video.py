"""Headless rollout videos: render reach_around offscreen, encode an MP4, read it back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import pytest

from robotune.robots.reach_around.task import ReachAroundTask
from robotune.rollout.video import OffscreenRenderer, read_mp4_frames, record_episode, write_mp4


def test_an_episode_renders_to_an_mp4_with_one_frame_per_step(tmp_path: Path) -> None:
    task = ReachAroundTask()
    env, expert = task.make_env(render_mode="rgb_array"), task.make_expert(side="inner")
    try:
        obs, _ = env.reset(seed=0)
        expert.reset(obs, np.random.default_rng(0))  # record_episode resets with the same seed: same start
        frames = record_episode(env, expert.act, seed=0, max_steps=12)
    finally:
        env.close()
    assert len(frames) == 13  # the reset state and 12 steps
    assert frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[-1])  # the arm moved

    path = tmp_path / "videos" / "episode_000.mp4"
    assert write_mp4(frames, path, fps=env.metadata["render_fps"]) == 13
    decoded = read_mp4_frames(path)
    assert decoded.shape == (13, 240, 320, 3)
    # lossy, but close to what was rendered
    assert np.abs(decoded.astype(int) - np.array(frames).astype(int)).mean() < 8


def test_without_a_render_mode_render_returns_none_and_make_env_still_takes_no_argument() -> None:
    env = ReachAroundTask().make_env()
    env.reset(seed=0)
    assert env.render_mode is None and env.render() is None
    with pytest.raises(ValueError, match="record_episode needs an env made with render_mode=.rgb_array."):
        record_episode(env, lambda obs: obs[:2], seed=0)


def test_an_unknown_render_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="render_mode"):
        ReachAroundTask().make_env(render_mode="human")


def test_frames_of_different_sizes_are_refused(tmp_path: Path) -> None:
    frames = [np.zeros((240, 320, 3), np.uint8), np.zeros((120, 160, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 1 is 160x120, the first was 320x240"):
        write_mp4(frames, tmp_path / "bad.mp4", fps=20)


def test_hidden_geom_groups_are_not_drawn() -> None:
    env = ReachAroundTask().make_env()
    env.reset(seed=0)
    shown = OffscreenRenderer(env.model, lookat=(0.4, 0.0, 0.0), elevation=-70.0)
    hidden = OffscreenRenderer(env.model, lookat=(0.4, 0.0, 0.0), elevation=-70.0, hidden_geom_groups=(0,))
    try:
        with_geoms, without_geoms = shown.render(env.data), hidden.render(env.data)
    finally:
        shown.close()
        hidden.close()
    # every reach_around geom is in group 0: hiding it leaves the empty background (the goal is a site)
    assert with_geoms.std() > 2 * without_geoms.std()


def test_evaluation_renders_its_first_episodes_to_mp4(tmp_path):
    from robotune.core.normalization import Normalizer
    from robotune.plugins.gaussian import GaussianConfig, GaussianPolicy
    from robotune.robots.reach_around.task import ReachAroundTask
    from robotune.rollout.evaluation import evaluate
    from robotune.rollout.video import read_mp4_frames

    task = ReachAroundTask()
    spec = task.spec
    torch.manual_seed(0)
    config = GaussianConfig(name="gaussian", hidden_dim=16, num_blocks=1)
    policy = GaussianPolicy(config, spec, Normalizer.identity(spec.obs_dim), Normalizer(spec.action_low, spec.action_high))
    result = evaluate(policy, task, episodes=3, num_envs=2, video_episodes=3, video_dir=tmp_path)
    for record in result.records:  # the reset frame, then one per step
        assert len(read_mp4_frames(tmp_path / f"episode_{record['episode']:03d}.mp4")) == record["length"] + 1


class IgnoresRenderMode(ReachAroundTask):
    """A task whose environment accepts render_mode but draws nothing (render() returns None)."""

    def make_env(self, render_mode=None):
        return super().make_env()


def test_render_problem_is_none_for_a_task_that_renders_and_names_why_otherwise() -> None:
    from robotune.rollout.video import render_problem
    from tests.rollout.toy_envs import TargetTask

    assert render_problem(ReachAroundTask()) is None
    # TargetTask.make_env() takes no render_mode at all.
    assert render_problem(TargetTask()).startswith("task 'target' cannot make an environment with render_mode='rgb_array': TypeError")
    assert render_problem(IgnoresRenderMode()) == "task 'reach_around' renders NoneType, not an (H, W, 3) uint8 frame"
    for problem in (render_problem(TargetTask()), render_problem(IgnoresRenderMode())):
        assert "\n" not in problem
