"""Sweeps: what each job of `robotune train --multirun` trained, and one report over its seeds.

    robotune train --multirun seed=0,1,2 algo.lr=1e-3,3e-4 hydra/launcher=ray
    robotune sweep-report multirun/2025-01-31_12-00-00

A sweep directory (`hydra.sweep.dir`) is the record of one multirun: each job writes `job.json` into
its own subdirectory (its overrides, its run directory, whether it completed), whichever launcher
ran it, in-process, on a Ray cluster or under SLURM. The runs themselves stay in their run
directories, named by what they are, so re-running an interrupted sweep resumes them. The report
groups the runs by setting (the overrides that vary across jobs, seed aside) and gives one table of
the final evaluation, mean ± std over seeds, and one figure of the learning curves, mean and ± std
band over seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from robotune.training.run_logging import CURVES, METRICS_FILE, curve_x_key, is_rl_run, plt, read_metrics  # plt: headless there

JOB_RECORD = "job.json"
SUMMARY_FILE = "summary.json"
REPORT_NAME = "sweep_report"  # <sweep dir>/sweep_report.{md,csv,png}
# Overrides that never define a setting: the seed is what the report averages over, and the
# run directory name robotune train adds for swept hyperparameters repeats them.
NOT_A_SETTING = ("seed", "run_dir_suffix")
# Final-evaluation entries of summary.json that are counts or spreads within one run, not results.
NOT_A_RESULT = ("eval_episodes", "eval_std_return")


class SweepRecorder(Callback):
    """Hydra callback: each job records itself in the sweep directory; at the end, one table of the results.

    `on_job_end` runs where the job ran (a Ray worker, a SLURM node), so the record goes to the
    shared sweep directory rather than to this process's memory; `on_multirun_end` reads them back.
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        record = {
            "overrides": list(config.hydra.overrides.task),
            "run_dir": str(Path(config.run_dir).resolve()),
            "status": job_return.status.name,
        }
        if job_return.status == JobStatus.FAILED:
            record["error"] = repr(job_return._return_value)
        job_dir = Path(config.hydra.runtime.output_dir)
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / JOB_RECORD).write_text(json.dumps(record, indent=2))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = read_job_records(Path(config.hydra.sweep.dir))
        summaries = [json.loads((Path(job["run_dir"]) / SUMMARY_FILE).read_text()) for job in jobs if job["status"] == "COMPLETED"]
        if not summaries:
            return
        table = Table(title="robotune multirun summary")
        columns = ("task", "policy", "algorithm", "seed", "eval_success_rate", "eval_mean_return", "checkpoint")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in summaries:
            table.add_row(*(f"{row.get(c):.2f}" if isinstance(row.get(c), float) else str(row.get(c)) for c in columns))
        Console(width=160).print(table)
        print(f"{len(summaries)} of {len(jobs)} jobs completed; report: robotune sweep-report {config.hydra.sweep.dir}")


def read_job_records(sweep_dir: Path) -> list[dict]:
    """The job records of a sweep directory, in job order."""
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {sweep_dir} does not exist")
    # job subdirectories are the job numbers by default: shorter names first puts 2 before 10
    paths = sorted(sweep_dir.glob(f"*/{JOB_RECORD}"), key=lambda p: (len(p.parent.name), p.parent.name))
    if not paths:
        raise FileNotFoundError(
            f"{sweep_dir} holds no job records (*/{JOB_RECORD}); give the hydra.sweep.dir of a `robotune train --multirun`"
        )
    return [{**json.loads(p.read_text()), "job": p.parent.name} for p in paths]


@dataclass
class SweepRun:
    setting: str  # the overrides that set this run apart from the other settings, e.g. "algo.lr=0.001"
    seed: int
    run_dir: Path
    results: dict[str, float]  # the final evaluation (eval_*) and the last training loss
    curves: dict[str, dict[float, float]]  # metric -> {x: value}, x being steps or environment steps
    rl: bool  # the run stepped environments: its curves other than the loss are against environment steps


def setting_labels(jobs: list[dict]) -> list[str]:
    """Each job's setting: its overrides that differ between jobs, the seed and the run directory aside."""

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    common = set.intersection(*(set(job["overrides"]) for job in jobs))
    labels = []
    for job in jobs:
        varying = [o for o in job["overrides"] if o not in common and key(o) not in NOT_A_SETTING]
        labels.append(" ".join(sorted(varying)) or "(all runs)")
    return labels


def load_runs(sweep_dir: Path) -> tuple[list[SweepRun], list[dict]]:
    """(the completed runs of a sweep, the records of the jobs that did not complete)."""
    jobs = read_job_records(sweep_dir)
    seen: dict[str, str] = {}
    for job in jobs:
        if job["run_dir"] in seen:
            raise ValueError(
                f"jobs {seen[job['run_dir']]} and {job['job']} of {sweep_dir} trained in the same run directory {job['run_dir']}; "
                "give each setting its own run_dir"
            )
        seen[job["run_dir"]] = job["job"]
    runs, failed = [], []
    for job, setting in zip(jobs, setting_labels(jobs)):
        if job["status"] != "COMPLETED":
            failed.append(job)
            continue
        run_dir = Path(job["run_dir"])
        summary_path, metrics_path = run_dir / SUMMARY_FILE, run_dir / METRICS_FILE
        for path in (summary_path, metrics_path):
            if not path.is_file():
                raise FileNotFoundError(f"job {job['job']} of {sweep_dir} completed, but its run has no {path}")
        summary = json.loads(summary_path.read_text())
        records = read_metrics(metrics_path)
        results = {k: float(v) for k, v in summary.items() if k.startswith("eval_") and k not in NOT_A_RESULT and isinstance(v, (int, float))}
        losses = [r["train/loss"] for r in records if "train/loss" in r]
        if losses:
            results["final_train_loss"] = losses[-1]
        rl = is_rl_run(records)
        curves = {}
        for metric, _, _ in CURVES:
            x_key = curve_x_key(metric, rl)
            points = {float(r[x_key]): float(r[metric]) for r in records if metric in r}
            if len(points) > 1:  # a single point is the final evaluation, already in the table
                curves[metric] = points
        runs.append(SweepRun(setting, int(summary["seed"]), run_dir, results, curves, rl))
    return runs, failed


def by_setting(runs: list[SweepRun]) -> dict[str, list[SweepRun]]:
    groups: dict[str, list[SweepRun]] = defaultdict(list)
    for run in runs:
        groups[run.setting].append(run)
    return dict(groups)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1) over seeds; the deviation is NaN for one seed."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else float("nan")


def report_rows(runs: list[SweepRun]) -> tuple[list[str], list[dict[str, Any]]]:
    """(the result columns, one row per setting with `<metric>_mean` and `<metric>_std` over its seeds)."""
    columns = list(dict.fromkeys(k for run in runs for k in run.results))
    rows = []
    for setting, group in by_setting(runs).items():
        row: dict[str, Any] = {"setting": setting, "seeds": " ".join(str(r.seed) for r in sorted(group, key=lambda r: r.seed))}
        for column in columns:
            values = [r.results[column] for r in group if column in r.results]
            if values:
                row[f"{column}_mean"], row[f"{column}_std"] = mean_std(values)
        rows.append(row)
    return columns, rows


def markdown_table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    def cell(row: dict, column: str) -> str:
        if f"{column}_mean" not in row:
            return ""
        mean, std = row[f"{column}_mean"], row[f"{column}_std"]
        return f"{mean:.4g}" if np.isnan(std) else f"{mean:.4g} ± {std:.2g}"

    lines = ["| setting | seeds | " + " | ".join(c.removeprefix("eval_") for c in columns) + " |"]
    lines.append("|---" * (len(columns) + 2) + "|")
    lines += [f"| {row['setting']} | {row['seeds']} | " + " | ".join(cell(row, c) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    fields = ["setting", "seeds", *(f"{c}_{stat}" for c in columns for stat in ("mean", "std"))]
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def plot_sweep(runs: list[SweepRun], out_file: Path, title: str) -> bool:
    """One panel per logged curve; per setting, the mean over seeds and a ± std band, at the x values all its seeds logged.
    False, and no figure, when no run logged a curve (one record each, as with logger=quiet)."""
    metrics = [(m, label, log) for m, label, log in CURVES if any(m in r.curves for r in runs)]
    if not metrics:
        return False
    rl = any(r.rl for r in runs)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for axis, (metric, label, log_scale) in zip(axes[0], metrics):
        for setting, group in by_setting(runs).items():
            curves = [r.curves[metric] for r in group if metric in r.curves]
            if not curves:
                continue
            xs = sorted(set.intersection(*(set(c) for c in curves)))
            values = np.array([[c[x] for x in xs] for c in curves])  # (seeds, points)
            mean = values.mean(axis=0)
            std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
            line = axis.plot(xs, mean, label=f"{setting} (n={len(values)})")[0]
            axis.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        if log_scale and all(v > 0 for r in runs for v in r.curves.get(metric, {}).values()):
            axis.set_yscale("log")
        if "success" in metric:
            axis.set_ylim(-0.05, 1.05)
        axis.set(xlabel="environment steps" if rl and metric != "train/loss" else "step", ylabel=label)
    axes[0, 0].set_title(title)
    axes[0, -1].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return True


def write_report(sweep_dir: Path, out_prefix: Path | None = None) -> dict[str, Path]:
    """Write the table (.md, .csv) and the figure (.png) of a sweep; returns their paths."""
    runs, failed = load_runs(sweep_dir)
    if not runs:
        raise ValueError(f"no job of {sweep_dir} completed ({len(failed)} failed); nothing to report")
    prefix = out_prefix or sweep_dir / REPORT_NAME
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = {kind: prefix.with_name(f"{prefix.name}.{kind}") for kind in ("md", "csv", "png")}
    columns, rows = report_rows(runs)
    note = f"\n{len(failed)} job(s) did not complete: " + ", ".join(j["job"] for j in failed) + "\n" if failed else ""
    if not plot_sweep(runs, paths["png"], f"sweep {sweep_dir.name}: mean ± std over seeds"):
        del paths["png"]
        note += "\nNo figure: no run logged more than one point of a learning curve (lower logger.log_every).\n"
    paths["md"].write_text(f"# Sweep {sweep_dir}\n\nMean ± std over seeds (n − 1), final evaluation of each run.\n\n"
                           + markdown_table(columns, rows) + note)
    write_csv(paths["csv"], columns, rows)
    return paths


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="robotune sweep-report",
        description="One table (mean ± std over seeds per setting) and one learning-curve figure for a multirun's sweep directory.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the hydra.sweep.dir of a `robotune train --multirun`")
    parser.add_argument("--out", type=Path, help="path prefix of the report files (default: <sweep_dir>/sweep_report)")
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.sweep_dir, args.out)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"robotune sweep-report: {exc}") from None
    print(paths["md"].read_text())
    print("\n".join(f"wrote {path}" for path in paths.values()))
