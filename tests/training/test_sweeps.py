"""Sweeps: `robotune train --multirun` records its jobs, each setting trains apart, and the report averages over seeds."""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from robotune.cli import _sweep_run_dir_suffix
from robotune.training.sweeps import JOB_RECORD, load_runs, main, write_report

TINY = [
    "policy=gaussian", "policy.hidden_dim=32", "policy.num_blocks=1", "algo.steps=40", "algo.batch_size=32",
    "algo.warmup_steps=5", "data.num_episodes=8", "eval.episodes=2", "eval.num_envs=2", "eval.video=0",
    "logger=quiet", "logger.log_every=10",
]


def multirun(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """A real sweep in tmp_path: run directories under tmp_path/runs, the sweep record in tmp_path/sweep."""
    command = [sys.executable, "-m", "robotune.cli", "train", "--multirun", "seed=0,1", "algo.lr=0.001,0.003", *TINY,
               f"data.cache_dir={tmp_path / 'data'}", f"hydra.sweep.dir={tmp_path / 'sweep'}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def check_sweep(tmp_path: Path) -> None:
    """Four jobs, four run directories named by their learning rate, and the report over their seeds."""
    sweep = tmp_path / "sweep"
    jobs = [json.loads((sweep / str(n) / JOB_RECORD).read_text()) for n in range(4)]
    assert [job["status"] for job in jobs] == ["COMPLETED"] * 4
    run_dirs = {Path(job["run_dir"]) for job in jobs}
    assert {p.name for p in run_dirs} == {f"reach_around-gaussian-bc-seed{s}-algo.lr={lr}" for s in (0, 1) for lr in ("0.001", "0.003")}
    assert all(p.parent == tmp_path / "runs" for p in run_dirs)

    paths = write_report(sweep)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [(row["setting"], row["seeds"]) for row in rows] == [("algo.lr=0.001", "0 1"), ("algo.lr=0.003", "0 1")]
    for row in rows:
        lr = row["setting"].split("=")[1]
        summaries = [json.loads((tmp_path / "runs" / f"reach_around-gaussian-bc-seed{s}-algo.lr={lr}" / "summary.json").read_text()) for s in (0, 1)]
        returns = [s["eval_mean_return"] for s in summaries]
        assert float(row["eval_mean_return_mean"]) == pytest.approx(statistics.mean(returns))
        assert float(row["eval_mean_return_std"]) == pytest.approx(statistics.stdev(returns))
        losses = []
        for seed in (0, 1):
            metrics = (tmp_path / "runs" / f"reach_around-gaussian-bc-seed{seed}-algo.lr={lr}" / "metrics.jsonl").read_text()
            losses.append([json.loads(line)["train/loss"] for line in metrics.splitlines() if "train/loss" in line][-1])
        assert float(row["final_train_loss_mean"]) == pytest.approx(statistics.mean(losses))
    assert "| algo.lr=0.001 | 0 1 |" in paths["md"].read_text()
    height, width, _ = matplotlib.image.imread(paths["png"]).shape
    assert height > 100 and width > 100


@pytest.mark.slow
def test_a_multirun_over_seeds_and_a_learning_rate_gives_one_table_and_one_plot(tmp_path, capsys):
    run = multirun(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "4 of 4 jobs completed" in run.stdout
    check_sweep(tmp_path)
    main([str(tmp_path / "sweep")])
    assert "algo.lr=0.003" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["ray", "submitit_local"])
def test_the_ray_and_submitit_launchers_run_a_sweep_that_the_report_reads(tmp_path, launcher):
    pytest.importorskip({"ray": "hydra_plugins.hydra_ray_launcher", "submitit_local": "hydra_plugins.hydra_submitit_launcher"}[launcher])
    settings = {
        # a Ray instance on this machine alone, two jobs at a time, no dashboard
        "ray": ["+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false"],
        "submitit_local": ["hydra.launcher.timeout_min=10"],
    }[launcher]
    run = multirun(tmp_path, f"hydra/launcher={launcher}", *settings)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "4 of 4 jobs completed" in run.stdout, "the jobs ran elsewhere; their records reached the sweep directory"
    check_sweep(tmp_path)


def test_the_report_names_failed_jobs_and_refuses_runs_that_shared_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no job records"):
        load_runs(tmp_path)
    for job, run_dir, status in ((0, "runs/a", "FAILED"), (1, "runs/b", "FAILED")):
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / JOB_RECORD).write_text(json.dumps({"overrides": [f"seed={job}"], "run_dir": run_dir, "status": status}))
    runs, failed = load_runs(tmp_path)
    assert runs == [] and [job["job"] for job in failed] == ["0", "1"]
    with pytest.raises(ValueError, match="no job .* completed \\(2 failed\\)"):
        write_report(tmp_path)
    (tmp_path / "1" / JOB_RECORD).write_text(json.dumps({"overrides": ["seed=1"], "run_dir": "runs/a", "status": "COMPLETED"}))
    with pytest.raises(ValueError, match="jobs 0 and 1 .* same run directory runs/a"):
        load_runs(tmp_path)


def test_a_multirun_that_sweeps_hyperparameters_names_them_in_the_run_directory():
    assert _sweep_run_dir_suffix(["--multirun", "seed=0,1", "algo.lr=1e-3,3e-4", "critic=mlp,other", "policy=diffusion,gaussian"]) == [
        "run_dir_suffix='-algo.lr=${algo.lr}-critic=${hydra:runtime.choices.critic}'"
    ]
    assert _sweep_run_dir_suffix(["-m", "seed=0,1", "policy=diffusion,gaussian", "algo.lr=1e-3"]) == [], "the default name tells these apart"
    assert _sweep_run_dir_suffix(["algo.lr=1e-3,3e-4"]) == [], "not a multirun"
    assert _sweep_run_dir_suffix(["-m", "algo.lr=1e-3,3e-4", "run_dir=runs/mine-${algo.lr}"]) == [], "the user named the runs"


def test_runs_that_logged_only_their_final_record_get_the_table_without_a_figure(tmp_path):
    """logger=quiet with a long log_every leaves one metrics record per run: the table is still written."""
    for job, seed, rate in ((0, 0, 1.0), (1, 1, 0.5)):
        run_dir = tmp_path / "runs" / str(job)
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps({"seed": seed, "eval_success_rate": rate}))
        (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 10, "env_steps": 640, "train/episode_return": -3.0}) + "\n")
        (tmp_path / str(job)).mkdir()
        record = {"overrides": [f"seed={seed}"], "run_dir": str(run_dir), "status": "COMPLETED"}
        (tmp_path / str(job) / JOB_RECORD).write_text(json.dumps(record))
    paths = write_report(tmp_path)
    assert "png" not in paths and not (tmp_path / "sweep_report.png").exists()
    report = paths["md"].read_text()
    assert "| 0.75 ± 0.35 |" in report and "No figure" in report
