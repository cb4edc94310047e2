"""The plugin registry: one decorator in-tree, one entry-point group out of tree.

In-tree plugins live in modules under `robotune.plugins` and `robotune.robots`; importing them runs
their `@register(...)` decorators. Out-of-tree packages declare, in their pyproject.toml,

    [project.entry-points."robotune.plugins"]
    my_policy = "my_package.my_policy"

and the module (or object) named there is imported the same way. Installing the package is the
only step: no list in robotune is edited. A plugin that fails to import, or that reuses a name, is
recorded with both sides named; every other plugin stays usable.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import pkgutil
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import robotune

ENTRY_POINT_GROUP = "robotune.plugins"
BUILTIN_PACKAGES = ("robotune.plugins", "robotune.robots")

# kind -> Hydra config group that selects it
KINDS: dict[str, str] = {
    "policy": "policy",
    "critic": "critic",
    "algorithm": "algo",
    "regularizer": "regularizer",
    "task": "task",
    "robot": "robot",
}


class PluginError(RuntimeError):
    """A plugin cannot be used; the message says which one and why."""


@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    obj: Any
    source: str  # distribution that provided it, e.g. "robotune" or "my-package 0.2.0"
    location: str  # "module:qualname"


@dataclass(frozen=True)
class PluginProblem:
    """Something that went wrong while loading plugins (a clash or an import failure)."""

    kind: str | None
    name: str
    message: str


_plugins: dict[tuple[str, str], PluginInfo] = {}
_clashes: dict[tuple[str, str], list[PluginInfo]] = {}
_problems: list[PluginProblem] = []
_current_source = f"robotune {robotune.__version__}"
_loaded = False


def _location(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def register(kind: str, name: str) -> Callable[[Any], Any]:
    """Class decorator: `@register("policy", "diffusion")`. The name is what users type in config."""
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind '{kind}'; expected one of {sorted(KINDS)}")

    def decorator(obj: Any) -> Any:
        info = PluginInfo(kind, name, obj, _current_source, _location(obj))
        key = (kind, name)
        existing = _plugins.get(key)
        if existing is not None and existing.location != info.location:
            _clashes.setdefault(key, [existing]).append(info)
            _problems.append(
                PluginProblem(
                    kind,
                    name,
                    f"{kind} '{name}' is registered twice: by {existing.source} ({existing.location}) "
                    f"and by {info.source} ({info.location})",
                )
            )
        else:
            _plugins[key] = info
        obj.plugin_name = name
        obj.plugin_kind = kind
        return obj

    return decorator


@contextlib.contextmanager
def _source(name: str) -> Iterator[None]:
    global _current_source
    previous, _current_source = _current_source, name
    try:
        yield
    finally:
        _current_source = previous


def _import_builtin_modules() -> None:
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
            if module.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            try:
                importlib.import_module(module.name)
            except Exception as exc:  # a broken built-in must not hide the others
                _problems.append(PluginProblem(None, module.name, f"failed to import {module.name}: {exc!r}"))


def _load_entry_points() -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown package"
        with _source(dist):
            try:
                ep.load()
            except Exception as exc:
                detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
                _problems.append(
                    PluginProblem(None, ep.name, f"plugin '{ep.name}' from {dist} ({ep.value}) failed to import: {detail}")
                )


def load_plugins(reload: bool = False) -> None:
    """Import every built-in plugin module and every `robotune.plugins` entry point, once."""
    global _loaded
    if _loaded and not reload:
        return
    _loaded = True
    _import_builtin_modules()
    _load_entry_points()


def get(kind: str, name: str) -> Any:
    """The plugin object, or a PluginError that lists what exists and any loading problem."""
    load_plugins()
    key = (kind, name)
    if key in _clashes:
        sides = " and ".join(f"{p.source} ({p.location})" for p in _clashes[key])
        raise PluginError(f"{kind} '{name}' is ambiguous: it is registered by {sides}. Uninstall or rename one of them.")
    if key in _plugins:
        return _plugins[key].obj
    related = [p.message for p in _problems if p.name == name or p.kind is None]
    known = ", ".join(sorted(n for k, n in _plugins if k == kind)) or "none"
    hint = ("\nLoading problems:\n  " + "\n  ".join(related)) if related else ""
    raise PluginError(f"no {kind} plugin named '{name}'. Available: {known}.{hint}")


def plugins(kind: str | None = None) -> list[PluginInfo]:
    load_plugins()
    return sorted((p for p in _plugins.values() if kind in (None, p.kind)), key=lambda p: (p.kind, p.name))


def problems() -> list[PluginProblem]:
    load_plugins()
    return list(_problems)


def source_of(obj: Any) -> str:
    """The distribution that registered this plugin object (for checkpoint metadata)."""
    for p in _plugins.values():
        if p.obj is obj:
            return p.source
    return "unregistered"
