"""Hydra configs shipped with robotune, and the glue that exposes plugins to Hydra.

YAML here holds only what varies (the train/eval/deploy entry configs, presets such as
`algo/ppo_finetune.yaml`); every plugin's config group entry (task/, policy/, algo/, critic/,
regularizer/, robot/) comes from the plugin's config dataclass, stored by `store_plugin_configs`.

A command that composes only some plugin groups imports only the built-in modules of those kinds
(`import_builtin_plugins`): importing every plugin takes seconds (torch, scipy, robosuite's models),
which `robotune deploy` would wait for before its first command.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import re

from omegaconf import DictConfig, OmegaConf

from robotune.core import registry
from robotune.core.config import build_config


def validate_plugin_groups(cfg: DictConfig) -> None:
    """Build the typed config of every plugin the composed config selects (`policy`, `algo`, ...), and of `runtime=ray`.

    Hydra's hint for an unknown key is `+group.key=value`, which composes without complaint; the
    plugin's config dataclass then has no such key. Checking here fails before any training, naming
    `group.key`, rather than when eval or deploy rebuild the plugin from the checkpoint.
    """
    for kind, group in registry.KINDS.items():
        node = cfg.get(group)
        if kind == "regularizer" and isinstance(node, DictConfig):  # regularizer=[a,b]: one node per name
            for name, regularizer in node.items():
                build_config(registry.get(kind, name).config_class, regularizer, f"{group}.{name}")
        elif isinstance(node, DictConfig) and "name" in node:
            build_config(registry.get(kind, node.name).config_class, node, group)
        elif isinstance(node, str):  # `+critic=NAME` while no critic plugin exists adds a plain string
            registry.get(kind, node)  # names what exists when it is not a plugin
            raise ValueError(
                f"invalid config '{group}: {node}': a plain value; select the {kind} plugin as a config group "
                f"({group}={node} on the command line, or in the defaults list)"
            )
    if cfg.get("runtime") is not None and cfg.runtime.name == "ray":  # checked here too, before any environment starts
        from robotune.rollout.ray_rollout import RayRuntimeConfig

        build_config(RayRuntimeConfig, cfg.runtime, "runtime")


# A module-level decorator line `@register("kind", "name")` (or `@registry.register(...)`).
REGISTER_LINE = re.compile(r"^@(?:\w+\.)?register\((.*)\)\s*$", re.MULTILINE)


@functools.cache
def builtin_index() -> dict[tuple[str, str], tuple[str, ...]]:
    """(kind, name) -> the built-in modules that register it, read from their `@register` lines without
    importing them: a regular expression and `ast.literal_eval`, 3 ms for every module here, where
    parsing the files took 35 ms. A test holds it equal to what importing every module registers."""
    index: dict[tuple[str, str], tuple[str, ...]] = {}
    for module in registry.builtin_modules():
        for arguments in REGISTER_LINE.findall(importlib.util.find_spec(module).loader.get_source(module) or ""):
            with contextlib.suppress(ValueError, SyntaxError):  # not two literals: registered when everything is imported
                kind, name = ast.literal_eval(f"({arguments},)")
                index[kind, name] = (*index.get((kind, name), ()), module)
    return index


def import_builtin_plugins(kind: str, name: str | None = None) -> None:
    """Import the built-in modules that register `kind` plugins (named `name`, if given). A module that
    fails to import is left to `registry.problems()`, which imports every module and reports it."""
    for (indexed_kind, indexed_name), modules in builtin_index().items():
        if indexed_kind == kind and name in (None, indexed_name):
            for module in modules:
                with contextlib.suppress(Exception):
                    importlib.import_module(module)


def store_plugin_configs(kinds: tuple[str, ...] | None = None) -> None:
    """Expose every registered plugin's config dataclass to Hydra as `<group>/<name>`; with `kinds`,
    import only the built-in modules of those kinds (and the entry points), and expose those."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for kind in kinds or ():
        import_builtin_plugins(kind)
    selected = [plugin for plugin in registry.plugins(load_all=kinds is None) if kinds is None or plugin.kind in kinds]
    for plugin in selected:
        config_class = getattr(plugin.obj, "config_class", None)
        if config_class is None:
            continue
        node = OmegaConf.structured(config_class)
        node.name = plugin.name
        group = registry.KINDS[plugin.kind]
        # Several regularizers can be selected at once (regularizer=[a,b]); each keeps its own node.
        package = f"{group}.{plugin.name}" if plugin.kind == "regularizer" else None
        store.store(group=group, name=plugin.name, node=node, package=package, provider=plugin.source)
