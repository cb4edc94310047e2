"""Hydra configs shipped with robotune, and the glue that exposes plugins to Hydra.

YAML here holds only what varies (the train/eval/deploy entry configs, presets such as
`algo/ppo_finetune.yaml`); every plugin's config group entry (task/, policy/, algo/, critic/,
regularizer/, robot/) comes from the plugin's config dataclass, stored by `store_plugin_configs`.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from robotune.core import registry
from robotune.core.config import build_config


def validate_plugin_groups(cfg: DictConfig) -> None:
    """Build the typed config of every plugin the composed config selects (`policy`, `algo`, ...).

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


def store_plugin_configs(kinds: tuple[str, ...] | None = None) -> None:
    """Expose every registered plugin's config dataclass (or those of `kinds`) to Hydra as `<group>/<name>`."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    selected = registry.plugins() if kinds is None else [plugin for kind in kinds for plugin in registry.plugins(kind)]
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
