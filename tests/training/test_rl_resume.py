"""An off-policy RL run killed with SIGKILL resumes: counters, learner and replay buffer restored, nothing refilled."""

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
