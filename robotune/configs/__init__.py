"""Hydra configs shipped with robotune. Plugin groups (task/, policy/, algo/, ...) also come from
each plugin's config dataclass, stored by `robotune.core.config.store_plugin_configs`."""
