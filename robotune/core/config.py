"""The base of every plugin's config: a dataclass with documented defaults.

The registry stores each plugin's config class in Hydra's ConfigStore under the plugin's group
(`policy/diffusion`, `algo/bc`, ...), so YAML is needed only for what varies, keys are locked
against typos, and values are type-checked when overridden on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

C = TypeVar("C")


@dataclass
class PluginConfig:
    name: str = ""  # the registered plugin name; filled in by the config store


def build_config(config_class: type[C], values: dict[str, Any] | DictConfig | None, where: str) -> C:
    """Make a typed config from (possibly partial) values; errors name the bad key under `where`."""
    if isinstance(values, DictConfig):
        # A composed node may carry keys added with Hydra's `+key=value`, which a merge of the node
        # itself lets through silently; its plain values are checked against the schema.
        values = OmegaConf.to_container(values, resolve=True)
    schema = OmegaConf.structured(config_class)
    try:
        merged = OmegaConf.merge(schema, values or {})
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except ConfigKeyError as exc:
        keys = ", ".join(f.name for f in fields(config_class) if f.name != "name")  # type: ignore[arg-type]
        raise ValueError(
            f"invalid config '{where}.{exc.full_key}': {config_class.__name__} has no key '{exc.key}'; its keys are: {keys}"
        ) from exc
    except OmegaConfBaseException as exc:  # omegaconf's errors carry the key; prefix the group the user typed
        raise ValueError(f"invalid config '{where}.{exc.full_key}': {exc.msg}") from exc
    except Exception as exc:  # a config's own __post_init__ check, which names its fields
        raise ValueError(f"invalid config '{where}': {exc}") from exc


def validate_plugin_groups(cfg: DictConfig) -> None:
    """Build the typed config of every plugin the composed config selects (`policy`, `algo`, ...).

    Hydra's hint for an unknown key is `+group.key=value`, which composes without complaint; the
    plugin's config dataclass then has no such key. Checking here fails before any training, naming
    `group.key`, rather than when eval or deploy rebuild the plugin from the checkpoint.
    """
    from robotune.core import registry

    for kind, group in registry.KINDS.items():
        node = cfg.get(group)
        if isinstance(node, DictConfig) and "name" in node:
            build_config(registry.get(kind, node.name).config_class, node, group)
        elif isinstance(node, str):  # `+critic=NAME` while no critic plugin exists adds a plain string
            registry.get(kind, node)  # names what exists when it is not a plugin
            raise ValueError(
                f"invalid config '{group}: {node}': a plain value; select the {kind} plugin as a config group "
                f"({group}={node} on the command line, or in the defaults list)"
            )


def store_plugin_configs() -> None:
    """Expose every registered plugin's config dataclass to Hydra as `<group>/<name>`."""
    from hydra.core.config_store import ConfigStore

    from robotune.core import registry

    store = ConfigStore.instance()
    for plugin in registry.plugins():
        config_class = getattr(plugin.obj, "config_class", None)
        if config_class is None:
            continue
        node = OmegaConf.structured(config_class)
        node.name = plugin.name
        group = registry.KINDS[plugin.kind]
        # Several regularizers can be selected at once (regularizer=[a,b]); each keeps its own node.
        package = f"{group}.{plugin.name}" if plugin.kind == "regularizer" else None
        store.store(group=group, name=plugin.name, node=node, package=package, provider=plugin.source)
