"""The plugin registry: one decorator in-tree, one entry-point group out of tree.

In-tree plugins live in modules under `robotune.plugins` and `robotune.robots`; importing them runs
their `@register(...)` decorators. Out-of-tree packages declare, in their pyproject.toml,

    [project.entry-points."robotune.plugins"]
    my_policy = "my_package.my_policy"

and the module (or object) named there is imported the same way. Installing the package is the
only step: no list in robotune is edited. A plugin that fails to import, that reuses a name, or whose
module two packages both install, is recorded with both sides named; every other plugin stays usable.

A plugin names its config dataclass once, as the class annotation `config: MyConfig`, from which
registration sets `config_class` (setting `config_class = MyConfig` directly works too). Registration
also checks that the class subclasses its kind's base class (a policy is a `robotune.core.policy.Policy`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.metadata
import inspect
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
    "policy": "policy", "critic": "critic", "algorithm": "algo", "regularizer": "regularizer", "task": "task",
    "robot": "robot",
}

# kind -> "module:class" that every plugin of that kind subclasses (`robotune.core.<kind>:<Kind>`).
# Imported when first needed, because those modules import this one.
BASE_CLASSES: dict[str, str] = {kind: f"robotune.core.{kind}:{kind.capitalize()}" for kind in KINDS}


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
BUILTIN_SOURCE = _current_source = f"robotune {robotune.__version__}"
_loaded: set[str] = set()  # what load_plugins has imported: "builtins", "entry points"


def _location(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _check_base_class(kind: str, name: str, obj: Any) -> None:
    module_name, class_name = BASE_CLASSES[kind].split(":")
    base = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginError(f"{_location(obj)} is registered as {kind} '{name}' but is not a subclass of "
                          f"{module_name}.{class_name}; a {kind} plugin must subclass it")


def _derive_config_class(cls: type) -> None:
    """Set `cls.config_class` from the class annotation `config: MyConfig`, so a plugin names its
    config once; where both are written, the annotation must be a base of (or equal to) config_class."""
    if "config" not in inspect.get_annotations(cls):
        return
    declared = vars(cls).get("config_class")
    try:
        annotated = inspect.get_annotations(cls, eval_str=True)["config"]
    except Exception as exc:  # e.g. a config class imported only under TYPE_CHECKING
        if declared is not None:
            return
        annotation = inspect.get_annotations(cls)["config"]
        raise PluginError(f"{_location(cls)}: cannot resolve the annotation 'config: {annotation}' ({exc}); "
                          f"import the config class at module level, or set config_class") from None
    if not (isinstance(annotated, type) and dataclasses.is_dataclass(annotated)):
        return
    if declared is None:
        cls.config_class = annotated
    elif not issubclass(declared, annotated):
        raise PluginError(f"{_location(cls)} sets config_class = {declared.__qualname__} but annotates config: "
                          f"{annotated.__qualname__}; write only the annotation")


def register(kind: str, name: str) -> Callable[[Any], Any]:
    """Class decorator: `@register("policy", "diffusion")`. The name is what users type in config."""
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind '{kind}'; expected one of {sorted(KINDS)}")

    def decorator(obj: Any) -> Any:
        _check_base_class(kind, name, obj)
        _derive_config_class(obj)
        builtin = obj.__module__.startswith(tuple(f"{package}." for package in BUILTIN_PACKAGES))  # robotune's, whoever imports it
        info = PluginInfo(kind, name, obj, BUILTIN_SOURCE if builtin else _current_source, _location(obj))
        key = (kind, name)
        existing = _plugins.get(key)
        if existing is not None and (existing.location, existing.source) != (info.location, info.source):
            _clashes.setdefault(key, [existing]).append(info)
            message = (f"{kind} '{name}' is registered twice: by {existing.source} ({existing.location}) "
                       f"and by {info.source} ({info.location})")
            _problems.append(PluginProblem(kind, name, message))
        else:
            _plugins[key] = info
        obj.plugin_name, obj.plugin_kind, obj.plugin_source = name, kind, info.source  # read by checkpoint metadata
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


def builtin_modules() -> list[str]:
    """Every built-in plugin module (a name starting with "_" is a helper, not a plugin)."""
    return [module.name for package in BUILTIN_PACKAGES
            for module in pkgutil.walk_packages(importlib.import_module(package).__path__, prefix=package + ".")
            if not module.name.rsplit(".", 1)[-1].startswith("_")]


def _import_builtin_modules() -> None:
    for module in builtin_modules():
        try:
            importlib.import_module(module)
        except Exception as exc:  # a broken built-in must not hide the others
            _problems.append(PluginProblem(None, module, f"failed to import {module}: {exc!r}"))


def _report_shared_module(module: str, first: tuple[str, str], second: tuple[str, str]) -> None:
    """Two distributions install the same module: one's files overwrote the other's, so nobody can
    tell which version runs. Every plugin that module registered becomes ambiguous."""
    (first_dist, first_entry), (second_dist, second_entry) = first, second
    message = (f"module '{module}' is installed by both {first_dist} (entry point '{first_entry}') and {second_dist} "
               f"(entry point '{second_entry}'): one package's files overwrote the other's. Uninstall one of them.")
    _problems.append(PluginProblem(None, second_entry, message))
    for key, info in list(_plugins.items()):
        defined_in = info.location.split(":")[0]
        if defined_in == module or defined_in.startswith(module + "."):
            _clashes.setdefault(key, [info]).append(dataclasses.replace(info, source=second_dist))


def _load_entry_points() -> None:
    loaded_by: dict[str, tuple[str, str]] = {}  # module -> (distribution, entry point) that first named it
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown package"
        first = loaded_by.setdefault(ep.module, (dist, ep.name))
        if first[0] != dist:  # importing it again would register nothing, so the clash would go unseen
            _report_shared_module(ep.module, first, (dist, ep.name))
            continue
        with _source(dist):
            try:
                ep.load()
            except Exception as exc:
                detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
                message = f"plugin '{ep.name}' from {dist} ({ep.value}) failed to import: {detail}"
                _problems.append(PluginProblem(None, ep.name, message))


def load_plugins(reload: bool = False, builtins: bool = True) -> None:
    """Import every built-in plugin module (unless `builtins` is False) and every `robotune.plugins` entry point, once."""
    for part, load in (("builtins", _import_builtin_modules), ("entry points", _load_entry_points)):
        if (builtins or part != "builtins") and (reload or part not in _loaded):
            _loaded.add(part)
            load()


def get(kind: str, name: str) -> Any:
    """The plugin object (importing every built-in plugin first unless it is registered), or a PluginError that lists what exists and any loading problem."""
    key = (kind, name)
    load_plugins(builtins=key not in _plugins)  # entry points always: a clash with one must show
    if key in _clashes:
        sides = " and ".join(f"{p.source} ({p.location})" for p in _clashes[key])
        raise PluginError(f"{kind} '{name}' is ambiguous: it is registered by {sides}. Uninstall or rename one of them.")
    if key in _plugins:
        return _plugins[key].obj
    related = [p.message for p in _problems if p.name == name or p.kind is None]
    known = ", ".join(sorted(n for k, n in _plugins if k == kind)) or "none"
    hint = ("\nLoading problems:\n  " + "\n  ".join(related)) if related else ""
    raise PluginError(f"no {kind} plugin named '{name}'. Available: {known}.{hint}")


def plugins(kind: str | None = None, load_all: bool = True) -> list[PluginInfo]:
    load_plugins(builtins=load_all)
    return sorted((p for p in _plugins.values() if kind in (None, p.kind)), key=lambda p: (p.kind, p.name))


def problems() -> list[PluginProblem]:
    load_plugins()
    return list(_problems)

