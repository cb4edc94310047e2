"""The `robotune` command: `train`, `eval`, `deploy` (Hydra apps), `data` and `plugins`.

    robotune train task=reach_around policy=diffusion algo.steps=2000
    robotune train --multirun policy=diffusion,gaussian
    robotune eval checkpoint=runs/reach_around-diffusion-bc-seed0
    robotune deploy checkpoint=DIR robot=planar_arm transport=sim
    robotune data info data/lift.zarr
    robotune plugins
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

from omegaconf import DictConfig

USAGE = """usage: robotune <command> [hydra overrides...]

commands:
  train     train a policy from a config (demonstrations -> policy -> checkpoint -> evaluation)
  eval      evaluate a checkpoint: robotune eval checkpoint=DIR [episodes=50]
  deploy    run a checkpoint on a robot: robotune deploy checkpoint=DIR robot=NAME transport=ros2|sim
  data      import, export, inspect and generate datasets: robotune data import|export|info|generate --help
  plugins   list every plugin with its kind and the package it came from

Any Hydra flag works after the command: --multirun, --cfg job, --help."""

# command -> (config name, "module:function" taking the composed config)
HYDRA_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "robotune.training.loop:train"),
    "eval": ("eval", "robotune.rollout.evaluation:evaluate_checkpoint"),
    "deploy": ("deploy", "robotune.deploy.cli:deploy"),
}


def _resolve(target: str) -> Callable[[DictConfig], Any]:
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def run_hydra_command(command: str, overrides: list[str]) -> None:
    import hydra

    from robotune.core.config import store_plugin_configs
    from robotune.core.registry import load_plugins

    load_plugins()
    store_plugin_configs()
    config_name, target = HYDRA_COMMANDS[command]
    function = _resolve(target)
    app = hydra.main(config_path="pkg://robotune.configs", config_name=config_name, version_base=None)(function)
    sys.argv = [f"robotune {command}", *overrides]
    app()


def list_plugins() -> None:
    """A table on a terminal; plain aligned columns when piped, so that grep and tests see whole lines."""
    from rich.console import Console
    from rich.table import Table

    from robotune.core import registry

    console = Console()
    columns = ("kind", "name", "package", "object")
    rows = [(p.kind, p.name, p.source, p.location) for p in registry.plugins()]
    if console.is_terminal:
        table = Table(title="robotune plugins")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
        for row in [columns, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for problem in registry.problems():
        print(f"problem: {problem.message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, overrides = argv[0], argv[1:]
    if command == "plugins":
        list_plugins()
    elif command == "data":
        from robotune.data.cli import main as data_main

        data_main(overrides)
    elif command in HYDRA_COMMANDS:
        run_hydra_command(command, overrides)
    else:
        print(f"robotune: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
