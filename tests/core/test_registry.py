import importlib.metadata

import pytest

from robotune.core import registry


@pytest.fixture
def isolated_registry(monkeypatch):
    """Run against copies of the registry's tables so that test plugins do not leak."""
    registry.load_plugins()
    monkeypatch.setattr(registry, "_plugins", dict(registry._plugins))
    monkeypatch.setattr(registry, "_clashes", dict(registry._clashes))
    monkeypatch.setattr(registry, "_problems", list(registry._problems))
    return registry


def test_builtin_plugins_are_discovered_with_their_package():
    names = {(p.kind, p.name): p for p in registry.plugins()}
    assert ("algorithm", "bc") in names
    assert ("task", "reach_around") in names
    assert names[("task", "reach_around")].source.startswith("robotune")
    assert registry.get("algorithm", "bc").plugin_name == "bc"


def test_name_clash_names_both_sides_and_leaves_others_usable(isolated_registry):
    class First:
        pass

    class Second:
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
