"""A checkpoint names the package (and version) of each plugin it needs, so a missing one can be installed."""

import pytest
from omegaconf import OmegaConf
from torch import nn

from robotune.core import registry
from robotune.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy, PolicyConfig
from robotune.core.task import build_task
from tests.core.plugin_packages import isolated_registry  # noqa: F401 (fixture)

PACKAGE, VERSION = "robotune-test-linear-policy", "0.4.2"


def test_a_checkpoint_whose_plugin_is_missing_names_the_package_to_install(isolated_registry, tmp_path):
    with registry._source(f"{PACKAGE} {VERSION}"):

        @registry.register("policy", "vanishing_linear")
        class VanishingLinearPolicy(Policy):
            config: PolicyConfig

            def __init__(self, config, spec, obs_normalizer, action_normalizer):
                super().__init__(config, spec, obs_normalizer, action_normalizer)
                self.linear = nn.Linear(config.obs_horizon * spec.obs_dim, config.horizon * spec.action_dim)

            def compute_loss(self, obs_norm, action_norm):
                return nn.functional.mse_loss(self.sample_chunk_norm(obs_norm, True, None), action_norm), {}

            def sample_chunk_norm(self, obs_norm, deterministic, generator):
                return self.linear(obs_norm.flatten(1)).view(-1, self.config.horizon, self.action_dim)

    spec = build_task({"name": "reach_around"}).spec
    config = OmegaConf.create({"task": {"name": "reach_around"}, "policy": {"name": "vanishing_linear"}, "algo": {"name": "bc"}})
    policy = VanishingLinearPolicy(
        PolicyConfig(name="vanishing_linear"), spec, Normalizer.identity(spec.obs_dim), Normalizer.identity(spec.action_dim)
    )
    path = save_checkpoint(tmp_path / "checkpoints", 1, policy, {"step": 1}, config)
    assert isinstance(load_checkpoint(path).policy, VanishingLinearPolicy)  # loads while the package is there

    del registry._plugins[("policy", "vanishing_linear")]  # the package is uninstalled
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert f"{path} was trained with policy 'vanishing_linear' from {PACKAGE} {VERSION}" in message
    assert f"pip install '{PACKAGE}=={VERSION}'" in message
    assert "no policy plugin named 'vanishing_linear'. Available:" in message
