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

    def log(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        record = {"step": step, "time_s": round(time.monotonic() - self.start, 3)}
        record.update({f"{prefix}/{k}": float(v) for k, v in metrics.items()})
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer:
            for key, value in metrics.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, step)
        if prefix == "train" and "loss" in metrics:
            self.progress.update(self.bar, info=f"loss {metrics['loss']:.4f}")

    def advance(self, step: int) -> None:
        self.progress.update(self.bar, completed=step)


def plot_learning_curve(metrics_file: Path, out_file: Path, title: str) -> None:
    """Training loss (log scale) and, when evaluations were logged, success rate against step."""
    records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
    train = [(r["step"], r["train/loss"]) for r in records if "train/loss" in r]
    evals = [(r["step"], r["eval/success_rate"]) for r in records if "eval/success_rate" in r]
    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(10 if evals else 6, 4), squeeze=False)
    if train:
        steps, losses = zip(*train)
        axes[0, 0].plot(steps, losses)
        axes[0, 0].set_yscale("log")
    axes[0, 0].set(xlabel="step", ylabel="training loss", title=title)
    if evals:
        steps, rates = zip(*evals)
        axes[0, 1].plot(steps, rates, marker="o")
        axes[0, 1].set(xlabel="step", ylabel="success rate", ylim=(-0.05, 1.05), title="evaluation")
        axes[0, 1].set_xlim(axes[0, 0].get_xlim())  # same steps as the loss curve
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
