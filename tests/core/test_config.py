"""Config mistakes get a message that names the key or option at fault."""

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ValidationError

from robotune.core import registry
from robotune.core.config import build_config
from robotune.configs import validate_plugin_groups
from robotune.core.policy import PolicyConfig
from robotune.core.task import build_task
from tests.helpers import compose_config


def test_defaults_compose_into_typed_plugin_configs():
    cfg = compose_config("train", [])
    assert (cfg.task.name, cfg.policy.name, cfg.algo.name) == ("reach_around", "diffusion", "bc")
    assert cfg.run_dir == "runs/reach_around-diffusion-bc-seed0"


def test_unknown_option_lists_the_available_ones():
    with pytest.raises(ConfigCompositionException) as err:
        compose_config("train", ["policy=no_such_policy"])
    assert "policy/no_such_policy" in str(err.value) and "gaussian" in str(err.value)


def test_unknown_key_is_named():
    with pytest.raises(ConfigCompositionException) as err:
        compose_config("train", ["algo.learning_rate_typo=0.1"])
    assert "learning_rate_typo" in str(err.value.__cause__ or err.value)


def test_wrong_type_is_named():
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        compose_config("train", ["policy.horizon=sixteen"])
    assert "horizon" in str(err.value.__cause__ or err.value)


def test_invalid_value_is_named_when_the_plugin_config_is_built():
    with pytest.raises(ValueError, match=r"policy.act_steps \(20\) must not exceed policy.horizon \(16\)"):
        build_config(PolicyConfig, {"horizon": 16, "act_steps": 20}, "policy")


def test_task_config_typo_is_named():
    cfg = compose_config("train", [])
    with pytest.raises(ConfigAttributeError, match="goal_nosie"):
        cfg.task.goal_nosie = 0.1
    assert build_task(cfg.task).spec.name == "reach_around"


def test_missing_mandatory_field_is_named_by_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "robotune.cli", "eval"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "checkpoint" in result.stderr and "Missing mandatory value" in result.stderr


def test_cli_rejects_an_unknown_top_level_key():
    result = subprocess.run(
        [sys.executable, "-m", "robotune.cli", "train", "epochs=3"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "epochs" in result.stderr


def test_a_key_added_with_plus_is_rejected_naming_it():
    """Hydra's hint `+policy.key=value` composes; the plugin's config has no such key."""
    cfg = compose_config("train", ["+policy.unknown_key=3"])
    with pytest.raises(ValueError) as err:
        validate_plugin_groups(cfg)
    assert "invalid config 'policy.unknown_key': DiffusionConfig has no key 'unknown_key'" in str(err.value)
    assert "its keys are: obs_horizon, horizon, act_steps" in str(err.value)
    with pytest.raises(ValueError, match="invalid config 'policy.unknown_key'"):
        build_config(registry.get("policy", "diffusion").config_class, cfg.policy, "policy")  # as training does
    validate_plugin_groups(compose_config("train", ["policy=gaussian", "policy.horizon=4", "policy.act_steps=2"]))


def test_a_plugin_group_given_as_a_plain_value_is_rejected():
    """`+critic=NAME` while no critic plugin is installed adds the string NAME, not a plugin."""
    with pytest.raises(registry.PluginError, match="no critic plugin named 'nope'"):
        validate_plugin_groups(OmegaConf.create({"critic": "nope"}))
    with pytest.raises(ValueError, match=r"invalid config 'algo: bc': a plain value; select the algorithm plugin"):
        validate_plugin_groups(OmegaConf.create({"algo": "bc"}))


def test_train_rejects_a_plus_key_in_one_line_before_training(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "robotune.cli", "train", "+policy.unknown_key=3", f"data.cache_dir={tmp_path / 'data'}",
         f"run_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("robotune train: invalid config 'policy.unknown_key'")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "run" / "checkpoints").exists()
