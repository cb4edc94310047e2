"""Processors end to end: a user's zarr demonstrations train a policy that sees the arm's joint angles
as (sin, cos) and z-scored entries; `robotune eval`, `robotune deploy transport=sim` and a PPO
fine-tuning run started from the checkpoint apply the same processors with no extra flags."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from robotune.deploy.cli import deploy
from robotune.rollout.evaluation import evaluate_checkpoint
from robotune.training.loop import train
from tests.data.test_train_on_external_data import write_reach_around_demos
from tests.helpers import compose_config, tiny_train_overrides

PROCESSORS = ["processors.angle_keys=[shoulder.pos,elbow.pos]", "processors.normalizer.kind=z_score"]
PROCESSED_NAMES = ["shoulder.pos.sin", "shoulder.pos.cos", "elbow.pos.sin", "elbow.pos.cos", "shoulder.vel", "elbow.vel", "goal.x", "goal.y"]


def test_angle_and_z_score_processors_train_evaluate_deploy_and_fine_tune_alike(tmp_path):
    write_reach_around_demos(tmp_path / "my_demos.zarr")
    overrides = [o for o in tiny_train_overrides(tmp_path, policy="gaussian", steps=150) if not o.startswith("data.")]
    summary = train(compose_config("train", [
        *overrides, f"data.path={tmp_path / 'my_demos.zarr'}", "data.obs_keys=[joints,goal]", *PROCESSORS, "eval.episodes=6", "eval.video=0",
    ]))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    meta = json.loads((tmp_path / "run" / "checkpoints" / "step_0000150" / "meta.json").read_text())
    assert meta["task_spec"]["obs_names"] == meta["processors"]["obs_names"] == PROCESSED_NAMES

    # robotune eval rebuilds the processors from the checkpoint: the same episodes as training's final evaluation
    evaluated = evaluate_checkpoint(compose_config("eval", [f"checkpoint={tmp_path / 'run'}", "episodes=6"]))
    assert evaluated["mean_return"] == summary["eval_mean_return"]
    assert evaluated["success_rate"] == summary["eval_success_rate"]

    # deploy reads the robot's signals by the task's own names and feeds the policy the processed observation
    deployed = deploy(compose_config("deploy", [
        f"checkpoint={tmp_path / 'run'}", "robot=planar_arm", "transport=sim", "episodes=2", "lead_ticks=0", "blend_steps=0",
    ]))
    assert deployed["outcome"] == "clean" and deployed["episodes"] == 2
    assert deployed["runner"]["policy_ticks"] > 0 and deployed["runner"]["observation_errors"] == 0

    # fine-tuning keeps the parent's processors, and its config.yaml says so
    tuned = train(compose_config("train", [
        "policy=gaussian", "algo=ppo_finetune", f"init_from={tmp_path / 'run'}", f"run_dir={tmp_path / 'tuned'}",
        "algo.steps=1", "algo.num_envs=2", "algo.rollout_steps=16", "algo.epochs=1", "algo.critic_warmup_iterations=0",
        "eval.episodes=2", "eval.num_envs=2", "eval.video=0", "logger=quiet",
    ]))
    tuned_meta = json.loads((tmp_path / "tuned" / "checkpoints" / "step_0000001" / "meta.json").read_text())
    assert tuned_meta["processors"] == meta["processors"]
    tuned_config = OmegaConf.load(tmp_path / "tuned" / "checkpoints" / "step_0000001" / "config.yaml")
    assert tuned_config.processors.angle_keys == ["shoulder.pos", "elbow.pos"] and tuned_config.processors.normalizer.kind == "z_score"
    assert evaluate_checkpoint(compose_config("eval", [f"checkpoint={tmp_path / 'tuned'}", "episodes=2"]))["mean_return"] == tuned["eval_mean_return"]
