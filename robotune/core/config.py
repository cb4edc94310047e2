"""The base of every plugin's config: a dataclass with documented defaults.

The registry stores each plugin's config class in Hydra's ConfigStore under the plugin's group
(`policy/diffusion`, `algo/bc`, ...), so YAML is needed only for what varies, keys are locked
against typos, and values are type-checked when overridden on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

C = TypeVar("C")


@dataclass
class PluginConfig:
    name: str = ""  # the registered plugin name; filled in by the config store


def build_config(config_class: type[C], values: dict[str, Any] | DictConfig | None, where: str) -> C:
    """Make a typed config from (possibly partial) values; errors name the bad key under `where`."""
    schema = OmegaConf.structured(config_class)
    try:
        merged = OmegaConf.merge(schema, values or {})
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except Exception as exc:  # omegaconf's errors carry the key; prefix the group the user typed
        raise ValueError(f"invalid config '{where}': {exc}") from exc


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
