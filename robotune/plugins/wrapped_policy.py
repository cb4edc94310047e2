"""A frozen base policy inside the policy that fine-tuning builds around it: one plugin, one checkpoint.

Residual PPO, DPPO and DSRL keep the behaviour-cloned policy frozen and train something beside it
(a residual head, a copy of the last denoising steps, a noise actor). What they deploy is the
combination, so the combination is one `Policy`:

- its config carries the base's whole config in `base` (the base's plugin name included), so the
  checkpoint's config.yaml alone says how to rebuild the base (DPPO's eval once loaded the wrong
  weights because its eval config had to repeat a fine-tuning setting, their issue #29);
- its state dict holds the base's weights and normalisers under `base.*`, next to its own.

An algorithm makes one from the loaded `init_from` policy with `wrap(base, **settings)`. The base
stays in eval mode and has no gradients; only the wrapper's own modules train.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from omegaconf import OmegaConf

from robotune.core import registry
from robotune.core.config import build_config
from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy, PolicyConfig
from robotune.core.spec import TaskSpec

W = TypeVar("W", bound="WrappedPolicy")
CHUNK_FIELDS = ("obs_horizon", "horizon", "act_steps")  # the wrapper's chunk schedule is the base's


@dataclass
class WrappedPolicyConfig(PolicyConfig):
    base: dict[str, Any] = field(default_factory=dict)  # the frozen base policy's config, its plugin `name` included


class WrappedPolicy(Policy):
    """A policy that owns a frozen `base` policy; subclasses add the trained part."""

    config: WrappedPolicyConfig

    def __init__(self, config: WrappedPolicyConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        if not config.base or "name" not in config.base:
            raise ValueError(
                f"policy.base is empty: a '{config.name}' policy wraps a trained base policy and is made by its "
                f"fine-tuning algorithm from init_from=<checkpoint>, not selected with policy={config.name}"
            )
        base_class = registry.get("policy", config.base["name"])
        base_config = build_config(base_class.config_class, config.base, "policy.base")
        for name in CHUNK_FIELDS:
            if getattr(base_config, name) != getattr(config, name):
                raise ValueError(f"policy.{name} ({getattr(config, name)}) must equal policy.base.{name} ({getattr(base_config, name)})")
        # Copies: a tensor saved twice under two names is refused by safetensors.
        self.base = base_class(base_config, spec, copy.deepcopy(obs_normalizer), copy.deepcopy(action_normalizer))
        self.base.requires_grad_(False).eval()

    @classmethod
    def wrap(cls: type[W], base: Policy, **settings: Any) -> W:
        """The wrapper around the trained policy `base` (its weights copied), with the wrapper's own `settings`."""
        base_config = OmegaConf.to_container(OmegaConf.structured(base.config))
        chunk = {name: getattr(base.config, name) for name in CHUNK_FIELDS}
        config = cls.config_class(name=cls.plugin_name, base=base_config, **chunk, **settings)
        policy = cls(config, base.spec, copy.deepcopy(base.obs_normalizer), copy.deepcopy(base.action_normalizer))
        policy.base.load_state_dict(base.state_dict())
        policy.base_loaded()
        return policy.to(next(base.buffers()).device)

    def base_loaded(self) -> None:
        """Called once the base's trained weights are in place (DPPO copies them into its fine-tuned network)."""

    def train(self, mode: bool = True) -> WrappedPolicy:
        super().train(mode)
        self.base.eval()  # frozen: no dropout or batch-norm updates either
        return self

    def reset(self) -> None:
        self.base.reset()

    def compute_loss(
        self, obs_norm: torch.Tensor, action_norm: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise TypeError(
            f"policy '{self.config.name}' is made and trained by RL fine-tuning; behaviour cloning trains its base "
            f"(policy={self.config.base['name']})"
        )
