import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from torch import nn

from robotune.configs import builtin_index
from robotune.core import registry
from robotune.core.policy import Policy, PolicyConfig
from robotune.core.task import Task
from tests.core.plugin_packages import isolated_registry, readme_python_block, write_distribution  # noqa: F401

SHARED_POLICY_MODULE = """
from robotune.core.policy import Policy
from robotune.core.registry import register


@register("policy", "shared_window")
class SharedWindowPolicy(Policy):
    pass
"""

SUBCLASSING_POLICY_MODULE = """
from robotune.core.registry import register
from robotune.plugins.diffusion import DiffusionPolicy


@register("policy", "diffusion_subclass")
class DiffusionSubclass(DiffusionPolicy):
    pass
"""

BROKEN_POLICY_MODULE = """
import robotune_test_missing_dependency  # not installed: the import error the user must see
"""


def test_builtin_plugins_are_discovered_with_their_package():
    names = {(p.kind, p.name): p for p in registry.plugins()}
    assert ("algorithm", "bc") in names
    assert ("task", "reach_around") in names
    assert names[("task", "reach_around")].source.startswith("robotune")
    assert registry.get("algorithm", "bc").plugin_name == "bc"


def test_the_builtin_index_names_every_builtin_plugin_and_its_module():
    """What a command imports without importing everything must be what everything registers."""
    imported = {
        (p.kind, p.name): (p.location.split(":")[0],)
        for p in registry.plugins()
        if p.location.startswith(tuple(package + "." for package in registry.BUILTIN_PACKAGES))
    }
    assert builtin_index() == imported


def test_a_plugin_is_found_importing_only_its_module_and_the_entry_points(tmp_path):
    """A fresh interpreter imports one robot and asks for it: its module and the entry points are
    imported, no other built-in; the built-in policy that an entry point's module imports stays robotune's."""
    write_distribution(
        tmp_path, "robotune-test-subclass", "0.3.0", {"diffusion_subclass": "robotune_test_subclass_policy"},
        {"robotune_test_subclass_policy.py": SUBCLASSING_POLICY_MODULE},
    )
    script = (
        "import json, sys\n"
        "from robotune.configs import builtin_index, import_builtin_plugins\n"
        "from robotune.core import registry\n"
        "import_builtin_plugins('robot', 'planar_arm')\n"
        "robot = registry.get('robot', 'planar_arm').__name__\n"
        "modules = {m for names in builtin_index().values() for m in names}\n"
        "imported = sorted(modules & set(sys.modules))\n"
        "print(json.dumps([robot, imported, registry.get('policy', 'diffusion').plugin_source,\n"
        "                  registry.get('policy', 'diffusion_subclass').plugin_source]))\n"
    )
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    robot, imported, builtin_source, subclass_source = json.loads(result.stdout.splitlines()[-1])
    assert robot == "PlanarArm"
    assert imported == ["robotune.plugins.diffusion", "robotune.robots.reach_around.robot"]
    assert builtin_source == registry.BUILTIN_SOURCE
    assert subclass_source == "robotune-test-subclass 0.3.0"


def test_name_clash_names_both_sides_and_leaves_others_usable(isolated_registry):
    class First(Policy):
        pass

    class Second(Policy):
        pass

    registry.register("policy", "clashing")(First)
    with registry._source("other-package 1.0"):
        registry.register("policy", "clashing")(Second)
    with pytest.raises(registry.PluginError) as err:
        registry.get("policy", "clashing")
    message = str(err.value)
    assert "robotune" in message and "First" in message
    assert "other-package 1.0" in message and "Second" in message
    assert any("registered twice" in p.message for p in registry.problems())
    assert registry.get("algorithm", "bc") is not None


def test_broken_entry_point_is_reported_and_others_still_load(isolated_registry, monkeypatch):
    broken = importlib.metadata.EntryPoint(
        name="broken_policy", value="robotune_no_such_module_xyz", group=registry.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [broken])
    registry._load_entry_points()
    problem = [p for p in registry.problems() if p.name == "broken_policy"]
    assert problem and "robotune_no_such_module_xyz" in problem[0].message
    assert "No module named" in problem[0].message
    with pytest.raises(registry.PluginError, match="broken_policy.*failed to import"):
        registry.get("policy", "broken_policy")
    assert registry.get("task", "reach_around") is not None


def test_unknown_plugin_lists_what_exists():
    with pytest.raises(registry.PluginError, match=r"no algorithm plugin named 'nope'. Available: .*bc"):
        registry.get("algorithm", "nope")


def test_unknown_kind_is_rejected():
    with pytest.raises(registry.PluginError, match="unknown plugin kind 'widget'"):
        registry.register("widget", "x")


@pytest.mark.parametrize("kind", sorted(registry.BASE_CLASSES))
def test_a_class_of_the_wrong_kind_is_refused_naming_the_expected_base(isolated_registry, kind):
    class NotAPlugin(nn.Module):
        pass

    base = registry.BASE_CLASSES[kind].replace(":", ".")
    with pytest.raises(registry.PluginError) as err:
        registry.register(kind, "not_a_plugin")(NotAPlugin)
    assert f"NotAPlugin is registered as {kind} 'not_a_plugin' but is not a subclass of {base}" in str(err.value)
    assert (kind, "not_a_plugin") not in {(p.kind, p.name) for p in registry.plugins()}


def test_a_task_registered_as_a_policy_is_refused(isolated_registry):
    class SomeTask(Task):
        pass

    with pytest.raises(registry.PluginError, match="SomeTask is registered as policy .* robotune.core.policy.Policy"):
        registry.register("policy", "some_task")(SomeTask)


def test_config_class_is_derived_from_the_config_annotation(isolated_registry, tmp_path, monkeypatch):
    """The README's policy names its config once, as `config: LinearChunkConfig`; with postponed
    annotations the annotation is a string until registration resolves it."""
    source = "from __future__ import annotations\n" + readme_python_block("# my_package/linear_policy.py")
    (tmp_path / "my_package").mkdir()
    (tmp_path / "my_package" / "__init__.py").write_text("")
    (tmp_path / "my_package" / "linear_policy.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_package.linear_policy")
    assert registry.get("policy", "linear_chunk").config_class is module.LinearChunkConfig


def test_config_class_and_annotation_must_agree(isolated_registry):
    @dataclass
    class WindowConfig(PolicyConfig):
        horizon: int = 4

    @dataclass
    class OtherConfig(PolicyConfig):
        pass

    @registry.register("policy", "both_agree")
    class BothAgree(Policy):
        config_class = WindowConfig
        config: WindowConfig

    assert BothAgree.config_class is WindowConfig

    class Disagree(Policy):
        config_class = OtherConfig
        config: WindowConfig

    with pytest.raises(registry.PluginError, match="sets config_class = .*OtherConfig but annotates config: .*WindowConfig"):
        registry.register("policy", "disagree")(Disagree)


def test_two_distributions_installing_the_same_module_clash(isolated_registry, tmp_path, monkeypatch):
    write_distribution(
        tmp_path, "robotune-test-original", "1.0.0", {"shared_window": "robotune_test_shared_policy"},
        {"robotune_test_shared_policy.py": SHARED_POLICY_MODULE},
    )
    write_distribution(tmp_path, "robotune-test-fork", "2.0.0", {"shared_window_fork": "robotune_test_shared_policy"})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._load_entry_points()

    problem = [p.message for p in registry.problems() if "robotune_test_shared_policy" in p.message]
    assert len(problem) == 1
    assert "robotune-test-original 1.0.0" in problem[0] and "robotune-test-fork 2.0.0" in problem[0]
    assert "installed by both" in problem[0]
    with pytest.raises(registry.PluginError) as err:
        registry.get("policy", "shared_window")
    assert "ambiguous" in str(err.value)
    assert "robotune-test-original 1.0.0" in str(err.value) and "robotune-test-fork 2.0.0" in str(err.value)


def run_cli(args: list[str], site) -> subprocess.CompletedProcess:
    """`robotune ARGS` in a fresh interpreter that also sees the distributions installed in `site`."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "robotune.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=site, env={**os.environ, "PYTHONPATH": path},
    )


@pytest.fixture
def broken_plugin_site(tmp_path):
    """An installed package whose policy module fails to import."""
    write_distribution(
        tmp_path, "robotune-test-broken", "0.1.0", {"broken_window": "robotune_test_broken_policy"},
        {"robotune_test_broken_policy.py": BROKEN_POLICY_MODULE},
    )
    return tmp_path


def test_selecting_a_plugin_that_failed_to_import_shows_the_import_error(broken_plugin_site):
    result = run_cli(["train", "policy=broken_window", f"run_dir={broken_plugin_site / 'run'}"], broken_plugin_site)
    assert result.returncode == 1
    assert "no policy plugin named 'broken_window'" in result.stderr
    assert "robotune-test-broken 0.1.0" in result.stderr
    assert "No module named 'robotune_test_missing_dependency'" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugins_command_exits_non_zero_when_it_reports_problems(broken_plugin_site):
    result = run_cli(["plugins"], broken_plugin_site)
    assert result.returncode == 1
    assert "problem: plugin 'broken_window' from robotune-test-broken 0.1.0" in result.stderr
    assert "diffusion" in result.stdout  # every other plugin is still listed
