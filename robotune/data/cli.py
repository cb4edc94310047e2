"""`robotune data`: import, export, inspect and generate datasets.

    robotune data import low_dim.hdf5 data/lift.zarr --obs-keys robot0_eef_pos,robot0_gripper_qpos,object
    robotune data info data/lift.zarr
    robotune data export data/lift.zarr exported/lift --format lerobot --fps 20
    robotune data export data/lift.zarr ~/.minari/datasets --format minari --dataset-id robotune/lift-v0
    robotune data generate locomotion --env hopper --level medium --steps 100000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from robotune.core.dataset import DatasetError, EpisodeDataset
from robotune.data import FORMATS, detect_format, load_dataset, save_dataset
from robotune.data.store import Progress as ProgressCallback


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robotune data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def add_reading_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=FORMATS, help="the source's format (default: detected)")
        p.add_argument("--obs-keys", help="comma-separated keys that make the observation, in order; key[a:b] takes columns")
        p.add_argument("--action-key", help="the array holding the actions (default: the format's)")
        p.add_argument("--filter-key", help="robomimic: keep the demos listed under mask/<key>")
        p.add_argument("--reward-key", help="diffusion_policy: the per-step reward array under data/")

    p = commands.add_parser("import", help="convert a file or folder to a robotune store")
    p.add_argument("source", type=Path)
    p.add_argument("out", type=Path, help="the store to write (a folder, e.g. data/lift.zarr), or a .safetensors file")
    add_reading_options(p)

    p = commands.add_parser("export", help="write a dataset in another library's format")
    p.add_argument("source", type=Path)
    p.add_argument("out", type=Path, help="lerobot: the new dataset folder; minari: Minari's datasets folder")
    p.add_argument("--format", dest="to", choices=("lerobot", "minari"), required=True)
    p.add_argument("--fps", type=float, help="lerobot: frames per second (default: the dataset's)")
    p.add_argument("--task", default="", help="lerobot: the task description stored with every frame")
    p.add_argument("--dataset-id", help="minari: namespace/name-v<version>, e.g. robotune/hopper-medium-v0")
    p.add_argument("--env-id", help="minari: the Gymnasium environment id to record (default: the dataset's)")

    p = commands.add_parser("info", help="episodes, steps, keys, statistics, success and return distributions")
    p.add_argument("path", type=Path)
    add_reading_options(p)

    p = commands.add_parser("generate", help="generate the locomotion datasets (cached, deterministic from a seed)")
    p.add_argument("what", choices=("locomotion",))
    p.add_argument("--env", default="all", help="hopper, walker2d, halfcheetah, a comma-separated list, or all")
    p.add_argument("--level", default="all", help="random, medium, medium-replay, expert, medium-expert, a list, or all")
    p.add_argument("--steps", type=int, default=100_000, help="steps per level (medium-expert holds twice this)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("data/locomotion"))
    p.add_argument("--experts", type=Path, help="folder of the expert .npz files (default: ../shared/data/locomotion_experts)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "import":
            import_command(args, console)
        elif args.command == "export":
            export_command(args, console)
        elif args.command == "info":
            print_info(read(args.path, args), console)
        else:
            generate_command(args, console)
    except DatasetError as exc:
        print(f"robotune data: error: {exc}", file=sys.stderr)
        sys.exit(1)


def read(path: Path, args: argparse.Namespace) -> EpisodeDataset:
    options = {"filter_key": args.filter_key, "reward_key": args.reward_key}
    return load_dataset(
        path,
        obs_keys=args.obs_keys,
        action_key=args.action_key,
        format=args.format,
        **{k: v for k, v in options.items() if v is not None},
    )


@contextmanager
def progress_bar(console: Console, description: str) -> Iterator[ProgressCallback]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def import_command(args: argparse.Namespace, console: Console) -> None:
    fmt = args.format or detect_format(args.source)
    with console.status(f"reading {args.source} as {fmt}"):
        dataset = read(args.source, args)
    meta = {"provenance": {**dataset.metadata.get("provenance", {}), "imported_by": "robotune data import"}}
    with progress_bar(console, f"writing {args.out}") as progress:
        options = {} if args.out.suffix == ".safetensors" else {"progress": progress}
        save_dataset(dataset, args.out, meta, **options)
    console.print(f"{len(dataset)} episodes, {dataset.num_steps} steps: {args.source} ({fmt}) -> {args.out}")


def export_command(args: argparse.Namespace, console: Console) -> None:
    dataset = load_dataset(args.source)
    with console.status(f"writing {args.to} dataset"):
        if args.to == "lerobot":
            from robotune.data.lerobot_v3 import write_lerobot

            out = write_lerobot(dataset, args.out, fps=args.fps, task=args.task)
        else:
            from robotune.data.minari_dataset import write_minari

            if not args.dataset_id:
                raise DatasetError("the Minari export needs --dataset-id namespace/name-v0")
            out = write_minari(dataset, args.dataset_id, root=args.out, env_id=args.env_id)
    console.print(f"{len(dataset)} episodes, {dataset.num_steps} steps: {args.source} -> {out} ({args.to})")


def generate_command(args: argparse.Namespace, console: Console) -> None:
    from robotune.data.locomotion import ENVS, LEVELS, generate

    envs = list(ENVS) if args.env == "all" else [e.strip() for e in args.env.split(",")]
    levels = list(LEVELS) if args.level == "all" else [lv.strip() for lv in args.level.split(",")]
    table = Table(title=f"locomotion datasets (seed {args.seed}, {args.steps} steps per level)")
    for column in ("dataset", "episodes", "steps", "normalised return", "measured random / expert return", "path", "seconds"):
        table.add_column(column)
    for env in envs:
        for level in levels:
            start = time.perf_counter()
            with progress_bar(console, f"{env}-{level}") as progress:
                dataset, path = generate(env, level, args.steps, args.seed, args.out, args.experts, progress=progress)
            table.add_row(
                f"{env}-{level}",
                str(len(dataset)),
                str(dataset.num_steps),
                f"{dataset.metadata['normalised_return_mean']:.1f}",
                "{random:.1f} / {expert:.1f}".format(**dataset.metadata["measured_returns"]),
                str(path),
                f"{time.perf_counter() - start:.1f}",
            )
    console.print(table)


def print_info(dataset: EpisodeDataset, console: Console) -> None:
    meta = dataset.metadata
    console.print(f"[bold]{dataset.source}[/]")
    if "provenance" in meta:
        console.print(f"provenance: {meta['provenance']}")
    console.print(
        f"{len(dataset)} episodes, {dataset.num_steps} steps; rewards: {'given' if dataset.has_rewards else 'absent (zeros)'}; "
        f"final observations: {'given' if dataset.has_final_obs else 'absent (last observation repeated)'}"
    )
    arrays = Table(title="arrays")
    for column in ("key", "shape", "dtype", "storage"):
        arrays.add_column(column)
    for name, value in dataset.arrays().items():
        arrays.add_row(name, str(tuple(value.shape)), str(value.dtype), "memory-mapped" if isinstance(value, np.memmap) else "in memory")
    console.print(arrays)
    if meta.get("obs_keys"):
        keys = Table(title="observation keys")
        for column in ("key", "shape", "obs columns"):
            keys.add_column(column)
        for entry in meta["obs_keys"]:
            keys.add_row(entry["key"], str(tuple(entry["shape"])), f"{entry['columns'][0]}:{entry['columns'][1]}")
        console.print(keys)

    stats = dataset.stats()
    table = Table(title="statistics per dimension")
    for column in ("field", "dim", "min", "max", "mean", "std"):
        table.add_column(column, justify="right" if column not in ("field",) else "left")
    for field in ("obs", "action"):
        for d in range(len(stats[f"{field}_min"])):
            values = [stats[f"{field}_{s}"][d] for s in ("min", "max", "mean", "std")]
            table.add_row(field, str(d), *(f"{v:.4g}" for v in values))
    console.print(table)

    lengths = dataset.episode_ends - dataset.episode_starts
    last = dataset.episode_ends - 1
    distributions = Table(title="per-episode distributions")
    for column in ("quantity", "mean", "std", "min", "25%", "50%", "75%", "max"):
        distributions.add_column(column, justify="right" if column != "quantity" else "left")
    rows = {"length": lengths}
    if dataset.has_rewards:
        rows["return"] = np.add.reduceat(dataset.reward.astype(np.float64), dataset.episode_starts)  # (E,)
        references = meta.get("reference_returns")
        if references:
            span = references["expert"] - references["random"]
            rows["normalised return"] = 100 * (rows["return"] - references["random"]) / span
    for name, values in rows.items():
        q = np.percentile(values, [0, 25, 50, 75, 100])
        distributions.add_row(name, f"{values.mean():.4g}", f"{values.std():.4g}", *(f"{v:.4g}" for v in q))
    console.print(distributions)
    terminated = int(dataset.terminated[last].sum())
    console.print(f"episode ends: {terminated} terminated, {int(dataset.truncated[last].sum())} truncated, "
                  f"{len(dataset) - int((dataset.terminated | dataset.truncated)[last].sum())} unmarked")
    if "episode_success" in meta:
        success = np.asarray(meta["episode_success"], bool)
        console.print(f"success: {success.sum()} of {len(success)} episodes ({success.mean():.0%})")
    else:
        console.print("success: not recorded in this dataset")
