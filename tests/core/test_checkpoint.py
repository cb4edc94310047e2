import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from robotune.core import checkpoint as checkpoint_module
from robotune.core.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from robotune.training.loop import build_components, train
from tests.helpers import compose_config, tiny_train_overrides


def test_round_trip_gives_the_same_actions_for_the_same_seed(tmp_path):
    cfg = compose_config("train", tiny_train_overrides(tmp_path, policy="diffusion", steps=30))
    summary = train(cfg)
    reloaded = load_checkpoint(tmp_path / "run")
    assert reloaded.path.name == "step_0000030" and str(reloaded.path) == summary["checkpoint"]
    assert reloaded.meta["plugins"]["policy"]["name"] == "diffusion"
    assert reloaded.task_spec.name == "reach_around"

    # The same policy rebuilt in-process from the run's own state.
    from robotune.core.checkpoint import load_training_state

    parts = build_components(cfg, console=None)
    parts.algorithm.load_state_dict(load_training_state(reloaded.path)["algorithm"])
    original = parts.algorithm.inference_policy()
    obs = torch.randn(5, reloaded.policy.config.obs_horizon, reloaded.task_spec.obs_dim)
    for deterministic in (True, False):
        a = original.predict_chunk(obs, deterministic, torch.Generator().manual_seed(7))
        b = reloaded.policy.predict_chunk(obs, deterministic, torch.Generator().manual_seed(7))
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_failed_write_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    cfg = compose_config("train", tiny_train_overrides(tmp_path, steps=20))
    train(cfg)
    checkpoints_dir = tmp_path / "run" / "checkpoints"
    before = list_checkpoints(checkpoints_dir)
    parts = build_components(cfg, console=None)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(checkpoints_dir, 40, parts.policy, {"step": 40}, cfg)
    assert list_checkpoints(checkpoints_dir) == before
    assert sorted(p.name for p in checkpoints_dir.iterdir()) == [p.name for p in before]


def test_damaged_checkpoint_errors_name_the_file(tmp_path):
    train(compose_config("train", tiny_train_overrides(tmp_path, steps=20)))
    path = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    (path / "policy.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="policy.safetensors is not a readable safetensors file"):
        load_checkpoint(path)
    (path / "meta.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="meta.json is not valid JSON"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nowhere")


def _train_command(tmp_path, run_name: str, policy: str) -> list[str]:
    overrides = tiny_train_overrides(tmp_path, policy=policy, steps=800)
    overrides = [o for o in overrides if not o.startswith(("run_dir=", "checkpoint_every="))]
    return [sys.executable, "-m", "robotune.cli", "train", *overrides, f"run_dir={tmp_path / run_name}", "checkpoint_every=50"]


@pytest.mark.parametrize("policy", ["gaussian", "diffusion"])  # diffusion draws loss noise: from the run's generator
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, policy):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Share one demonstration cache, then train uninterrupted for reference.
    reference = subprocess.run(_train_command(tmp_path, "reference", policy), env=env, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr

    process = subprocess.Popen(_train_command(tmp_path, "interrupted", policy), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints_dir = tmp_path / "interrupted" / "checkpoints"
    deadline = time.monotonic() + 120
    while not list_checkpoints(checkpoints_dir) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed_at = json.loads((list_checkpoints(checkpoints_dir)[-1] / "training_state.json").read_text())
    interrupted_step = [v for k, v in killed_at["__dict__"] if k == "step"][0]
    assert 0 < interrupted_step < 800, "the run must have been stopped mid-training"

    resumed = subprocess.run(_train_command(tmp_path, "interrupted", policy), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"(step {interrupted_step})" in resumed.stdout

    a = load_checkpoint(tmp_path / "reference").policy.state_dict()
    b = load_checkpoint(tmp_path / "interrupted").policy.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"weights differ at {key}")
    steps = [json.loads(line)["step"] for line in (tmp_path / "interrupted" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps), "metrics logged after the restored checkpoint were not dropped"
