"""Where a training run reports: a rich progress bar, TensorBoard, a JSONL file and a learning-curve PNG."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: plots go to files only
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn  # noqa: E402

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "learning_curve.png"

# The curves a learning-curve figure shows, when a run logged them: (metric, axis label, log scale).
# The training loss is read against loop steps; the others against environment steps in RL runs.
CURVES = (
    ("train/loss", "training loss", True),
    ("train/episode_return", "episode return (training rollouts)", False),
    ("eval/mean_return", "evaluated return", False),
    ("train/success_rate", "success rate (training rollouts)", False),
    ("eval/success_rate", "evaluated success rate", False),
)


@dataclass
class LoggerConfig:
    progress: bool = True  # rich progress bar on the terminal
    tensorboard: bool = True  # event files under <run_dir>/tensorboard
    log_every: int = 50  # steps between metric records


class RunLogger:
    """Appends metric records; on resume, records past the restored step are dropped first."""

    def __init__(self, run_dir: Path, config: LoggerConfig, total_steps: int, start_step: int, console: Console) -> None:
        self.config = config
        self.path = run_dir / METRICS_FILE
        self.curve_path = run_dir / CURVE_FILE
        self.console = console
        self._truncate_after(start_step)
        self.file = self.path.open("a")
        self.writer = None
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step)
        self.progress = Progress(
            TextColumn("[bold blue]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            disable=not config.progress,
        )
        self.bar = self.progress.add_task("train", total=total_steps, completed=start_step, info="")
        self.start = time.monotonic()

    def _truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(self.path)

    def __enter__(self) -> RunLogger:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        self.file.close()
        if self.writer:
            self.writer.close()

    def log(self, step: int, metrics: dict[str, float], prefix: str = "train", counters: dict[str, int] | None = None) -> None:
        """One record at loop step `step`; `counters` (gradient and environment steps) go in it too."""
        record = {"step": step, "time_s": round(time.monotonic() - self.start, 3), **(counters or {})}
        record.update({f"{prefix}/{k}": float(v) for k, v in metrics.items() if v is not None})
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer:
            env_steps = (counters or {}).get("env_steps", 0)
            for key, value in metrics.items():
                if value is None:
                    continue
                self.writer.add_scalar(f"{prefix}/{key}", value, step)
                if env_steps:  # RL curves are read against environment steps
                    self.writer.add_scalar(f"{prefix}_by_env_steps/{key}", value, env_steps)
        if prefix == "train" and "loss" in metrics:
            self.progress.update(self.bar, info=f"loss {metrics['loss']:.4f}")

    def advance(self, step: int) -> None:
        self.progress.update(self.bar, completed=step)


def plot_learning_curve(metrics_file: Path, out_file: Path, title: str) -> None:
    """One panel per available curve: training loss (log scale) against step; for RL runs, episode
    return and success rate against environment steps; evaluated success rate and return."""
    records = read_metrics(metrics_file)
    rl = is_rl_run(records)
    x_label = "environment steps" if rl else "step"
    panels = []
    for key, label, log_scale in CURVES:
        x_key = curve_x_key(key, rl)
        points = [(r.get(x_key, 0), r[key]) for r in records if key in r]
        if key == "eval/mean_return" and not rl:
            continue  # BC runs: success rate is the evaluation that matters, keep the figure as it was
        if points:
            panels.append((key, label, log_scale, points))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5 * max(1, len(panels)), 4), squeeze=False)
    for axis, (key, label, log_scale, points) in zip(axes[0], panels):
        xs, ys = zip(*points)
        axis.plot(xs, ys, marker="o" if key.startswith("eval") else None)
        if log_scale and min(ys) > 0:
            axis.set_yscale("log")
        if "success" in key:
            axis.set_ylim(-0.05, 1.05)
        axis.set(xlabel="step" if key == "train/loss" else x_label, ylabel=label)
    axes[0, 0].set_title(title)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def read_metrics(metrics_file: Path) -> list[dict]:
    """The records of a run's metrics.jsonl, in order."""
    return [json.loads(line) for line in metrics_file.read_text().splitlines() if line]


def is_rl_run(records: list[dict]) -> bool:
    """Whether the run stepped environments (its curves are then read against environment steps)."""
    return any(r.get("env_steps") for r in records)


def curve_x_key(metric: str, rl: bool) -> str:
    return "env_steps" if rl and metric != "train/loss" else "step"
