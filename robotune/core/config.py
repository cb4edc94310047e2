"""The base of every plugin's config: a dataclass with documented defaults.

`robotune.configs` stores each plugin's config class in Hydra's ConfigStore under the plugin's
group (`policy/diffusion`, `algo/bc`, ...), so YAML is needed only for what varies, keys are
locked against typos, and values are type-checked when overridden on the command line.
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
        raise ValueError(f"invalid config '{where}.{exc.full_key}': {config_class.__name__} has no key '{exc.key}'; "
                         f"its keys are: {keys}") from exc
    except OmegaConfBaseException as exc:  # omegaconf's errors carry the key; prefix the group the user typed
        raise ValueError(f"invalid config '{where}.{exc.full_key}': {exc.msg}") from exc
    except Exception as exc:  # a config's own __post_init__ check, which names its fields
        raise ValueError(f"invalid config '{where}': {exc}") from exc
