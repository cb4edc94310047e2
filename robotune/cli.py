"""The `robotune` command: `train`, `eval`, `deploy` (Hydra apps), `data` and `plugins`.

    robotune train task=reach_around policy=diffusion algo.steps=2000
    robotune train --multirun policy=diffusion,gaussian
    robotune eval checkpoint=runs/reach_around-diffusion-bc-seed0
    robotune deploy checkpoint=DIR robot=planar_arm transport=sim
    robotune data info data/lift.zarr
    robotune sweep-report multirun/2025-01-31_12-00-00
    robotune plugins
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator

from omegaconf import DictConfig

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override

USAGE = """usage: robotune <command> [hydra overrides...]

commands:
  train     train a policy from a config (demonstrations -> policy -> checkpoint -> evaluation)
  eval      evaluate a checkpoint: robotune eval checkpoint=DIR [episodes=50]
  deploy    run a checkpoint on a robot: robotune deploy checkpoint=DIR robot=NAME transport=ros2|sim
  data      import, export, inspect and generate datasets: robotune data import|export|info|generate --help
  sweep-report  one table and one plot, mean and std over seeds, of a multirun: robotune sweep-report SWEEP_DIR
  plugins   list every plugin with its kind and the package it came from (exit 1 on any loading problem)

Any Hydra flag works after the command: --multirun, --cfg job, --help."""

# command -> (config name, "module:function" taking the composed config)
HYDRA_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "robotune.training.loop:train"),
    "eval": ("eval", "robotune.rollout.evaluation:evaluate_checkpoint"),
    "deploy": ("deploy", "robotune.deploy.cli:deploy"),
}

# command -> the plugin kinds whose config groups its config composes, where that is not all of them:
# importing every plugin takes seconds, which deploy would wait for before its first command. It
# imports these kinds' built-in modules, then those its checkpoint names. The others import them all.
COMPOSED_PLUGIN_KINDS: dict[str, tuple[str, ...]] = {"deploy": ("robot",)}


# commands whose composed config selects plugins to build, checked before the command runs
PLUGIN_CONFIG_COMMANDS = ("train",)

# what the default run_dir already names (runs/<task>-<policy>-<algo>-seed<seed>)
RUN_IDENTITY_KEYS = ("task", "policy", "algo", "seed")


def _resolve(target: str) -> Callable[[DictConfig], Any]:
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def _validating_plugin_configs(command: str, function: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """`function`, run only once every selected plugin's typed config builds from the composed config.

    A bad key is a config error: one line naming it, as Hydra's own config errors print, not a traceback.
    """
    from robotune.configs import validate_plugin_groups
    from robotune.core.registry import PluginError

    @functools.wraps(function)
    def validated(cfg: DictConfig) -> Any:
        try:
            validate_plugin_groups(cfg)
        except (ValueError, PluginError) as exc:
            sys.exit(f"robotune {command}: {exc}")
        return function(cfg)

    return validated


def _parsed_overrides(overrides: list[str]) -> Iterator[Override]:
    """The command line's `key=value` overrides, parsed; flags, and overrides Hydra will report as malformed, skipped."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for text in overrides:
        if text.startswith("-") or "=" not in text:
            continue
        try:
            yield parser.parse_override(text)
        except Exception:  # left to Hydra, which reports malformed overrides itself
            continue


def _selected_plugins(overrides: list[str]) -> list[tuple[str, str]]:
    """(kind, name) for every `group=name` override that selects a plugin, sweeps included."""
    from robotune.core.registry import KINDS

    kind_of_group = {group: kind for kind, group in KINDS.items()}
    selected = []
    for override in _parsed_overrides(overrides):
        kind = kind_of_group.get(override.key_or_group)
        if kind is None or override.is_delete():
            continue
        try:
            names = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        except Exception:  # a sweep that lists no names (an interval): left to Hydra, which reports it
            continue
        selected += [(kind, str(name)) for name in names if name is not None]  # `policy=null` selects none
    return selected


def _explain_unloadable_selection(command: str, overrides: list[str]) -> None:
    """Exit with the registry's message when an override selects a plugin that is not registered
    while some plugin module failed to import.

    Hydra would say only "Could not find 'policy/NAME'", since a module that failed to import
    registered nothing; the registry's message lists what is available and each import error.
    """
    from robotune.core import registry

    for kind, name in _selected_plugins(overrides):
        if any(plugin.name == name for plugin in registry.plugins(kind, load_all=False)):
            continue
        if any(problem.kind is None for problem in registry.problems()):
            try:
                registry.get(kind, name)
            except registry.PluginError as exc:
                sys.exit(f"robotune {command}: {exc}")


def _sweep_run_dir_suffix(overrides: list[str]) -> list[str]:
    """For a multirun that sweeps settings the default run_dir does not name, an override naming them in it.

    `robotune train --multirun seed=0,1 algo.lr=1e-3,3e-4` would otherwise train both learning rates
    in runs/<task>-<policy>-<algo>-seed<seed>, the second resuming the first's finished run. With
    `run_dir_suffix='-algo.lr=${algo.lr}'` each job resolves its own value. Group choices
    (`critic=mlp,other`) are named by `${hydra:runtime.choices.<group>}`.
    """
    from robotune.core.registry import KINDS

    multirun = "-m" in overrides or "--multirun" in overrides
    if not multirun or any(o.lstrip("+").startswith(("run_dir=", "run_dir_suffix=")) for o in overrides):
        return []
    groups = set(KINDS.values()) | {entry.name for entry in importlib.resources.files("robotune.configs").iterdir() if entry.is_dir()}
    names = []
    for override in _parsed_overrides(overrides):
        key = override.key_or_group
        if not override.is_sweep_override() or key in RUN_IDENTITY_KEYS or key.startswith("hydra"):
            continue
        value = f"${{hydra:runtime.choices.{key}}}" if key in groups else f"${{{key}}}"
        names.append(f"{key}={value}")
    return [f"run_dir_suffix='-{'-'.join(names)}'"] if names else []


def run_hydra_command(command: str, overrides: list[str]) -> None:
    import hydra

    from robotune.configs import store_plugin_configs
    from robotune.core.registry import load_plugins

    kinds = COMPOSED_PLUGIN_KINDS.get(command)
    if kinds is None:
        load_plugins()
    store_plugin_configs(kinds)
    _explain_unloadable_selection(command, overrides)
    config_name, target = HYDRA_COMMANDS[command]
    function = _resolve(target)
    if command in PLUGIN_CONFIG_COMMANDS:
        function = _validating_plugin_configs(command, function)
    app = hydra.main(config_path="pkg://robotune.configs", config_name=config_name, version_base=None)(function)
    if command == "train" and (suffix := _sweep_run_dir_suffix(overrides)):
        # beside the other overrides: argparse takes them as one run of arguments, not split by a flag like --cfg
        first = next(i for i, text in enumerate(overrides) if "=" in text and not text.startswith("-"))
        overrides = [*overrides[:first], *suffix, *overrides[first:]]
    sys.argv = [f"robotune {command}", *overrides]
    app()


def list_plugins() -> int:
    """A table on a terminal; plain aligned columns when piped, so that grep and tests see whole lines.

    Returns the number of problems, each also printed to stderr.
    """
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
    problems = registry.problems()
    for problem in problems:
        print(f"problem: {problem.message}", file=sys.stderr)
    return len(problems)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, overrides = argv[0], argv[1:]
    if command == "plugins":
        if list_plugins():
            sys.exit(1)  # scripts and CI see that an installed plugin cannot be used
    elif command == "data":
        from robotune.data.cli import main as data_main

        data_main(overrides)
    elif command == "sweep-report":
        from robotune.training.sweeps import main as sweep_report_main

        sweep_report_main(overrides)
    elif command in HYDRA_COMMANDS:
        run_hydra_command(command, overrides)
    else:
        print(f"robotune: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
