"""Resuming an off-policy RL run after SIGKILL; the best-checkpoint and data options of the loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from robotune.core.checkpoint import list_checkpoints, load_training_state

STEPS, LEARNING_STARTS = 400, 50


def command(run_dir) -> list[str]:
    return [
        sys.executable, "-m", "robotune.cli", "train", "task=gymnasium", "task.env_id=Pendulum-v1", "algo=sac",
        "policy=gaussian_sac", "policy.hidden_dim=32", "critic.hidden_dims=[32,32]", f"algo.steps={STEPS}",
        f"algo.learning_starts={LEARNING_STARTS}", "algo.batch_size=32", "algo.buffer_size=1000", f"run_dir={run_dir}",
        "checkpoint_every=100", "eval.episodes=1", "eval.num_envs=1", "logger=quiet", "logger.log_every=10",
    ]


def test_sac_killed_mid_run_resumes_with_its_replay_buffer(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command(run_dir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list_checkpoints(run_dir / "checkpoints") and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # let it run past the checkpoint, so the kill loses some unsaved steps
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    checkpoint = list_checkpoints(run_dir / "checkpoints")[-1]
    saved_step = load_training_state(checkpoint)["step"]
    assert 0 < saved_step < STEPS, "the run must have been stopped mid-training"
    kept = np.load(run_dir / "replay" / "obs.npy")[:saved_step].copy()

    resumed = subprocess.run(command(run_dir), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"(step {saved_step})" in resumed.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    # Counters continue from the checkpoint: every loop step took one environment step, updates after learning_starts.
    assert summary["env_steps"] == STEPS and summary["grad_steps"] == STEPS - LEARNING_STARTS + 1
    # The transitions collected before the checkpoint are still in the buffer, untouched (not refilled).
    np.testing.assert_array_equal(np.load(run_dir / "replay" / "obs.npy")[:saved_step], kept)
    final_state = load_training_state(list_checkpoints(run_dir / "checkpoints")[-1])
    assert final_state["algorithm"]["buffer"]["size"] == STEPS
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps), "metrics logged after the restored checkpoint were not dropped"


def test_best_checkpoint_and_data_options(tmp_path):
    from robotune.core.checkpoint import load_checkpoint
    from robotune.training.loop import train
    from tests.helpers import compose_config, tiny_train_overrides

    overrides = [o for o in tiny_train_overrides(tmp_path, steps=60) if not o.startswith("data.num_episodes")]
    cfg = compose_config("train", [*overrides, "data.num_episodes=8", "data.max_episodes=3", "eval.every=20",
                                   "eval.every_episodes=2", "eval.best_metric=mean_return"])
    summary = train(cfg)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    periodic = [(r["step"], r["eval/mean_return"]) for r in records if "eval/mean_return" in r][:-1]
    best_step, best_value = max(periodic, key=lambda sv: sv[1])
    assert summary["best_mean_return"] == best_value
    assert summary["last10_mean_mean_return"] == sum(v for _, v in periodic) / len(periodic)
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best")
    assert best.meta["step"] == best_step
    from robotune.training.loop import build_components

    dataset = build_components(cfg, console=None).dataset
    assert len(dataset) == 3 and dataset.num_steps == int(dataset.episode_ends[-1])


def test_final_evaluation_runs_once_with_videos_where_the_task_can_render(tmp_path, monkeypatch, capsys):
    """Videos are a default, not the run's goal: a task that cannot render is evaluated once, without
    them, after a one-line warning; one that can gets its videos from that same single evaluation."""
    from robotune.robots.reach_around.task import ReachAroundTask
    from robotune.training import loop
    from tests.helpers import compose_config, tiny_train_overrides

    def train(name):
        overrides = [o for o in tiny_train_overrides(tmp_path, steps=20) if not o.startswith("run_dir=")]
        return loop.train(compose_config("train", [*overrides, f"run_dir={tmp_path / name}", "eval.video=1"]))

    video_episodes = []
    evaluate = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda *args, **kwargs: video_episodes.append(kwargs["video_episodes"]) or evaluate(*args, **kwargs))

    train("renders")
    assert video_episodes == [1] and [p.name for p in (tmp_path / "renders" / "videos").iterdir()] == ["episode_000.mp4"]
    assert "Warning" not in capsys.readouterr().out

    make_env = ReachAroundTask.make_env

    def without_a_renderer(self, render_mode=None):
        if render_mode is not None:
            raise ValueError(f"no GL context for render_mode={render_mode!r}\n(second line of the error)")
        return make_env(self)

    monkeypatch.setattr(ReachAroundTask, "make_env", without_a_renderer)
    video_episodes.clear()
    summary = train("blind")
    assert video_episodes == [0] and not (tmp_path / "blind" / "videos").exists()
    warnings = [line for line in capsys.readouterr().out.splitlines() if "Warning" in line]
    assert warnings == [
        "Warning: no evaluation videos: task 'reach_around' cannot make an environment with render_mode='rgb_array': "
        "ValueError: no GL context for render_mode='rgb_array'"
    ]
    assert summary["eval_episodes"] == 4
