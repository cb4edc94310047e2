"""The demonstration cache is keyed by every file of the task's package, not only the task class's own."""

import importlib

from robotune.core.task import build_task
from robotune.training.demonstrations import cached_demonstrations, task_source_digest
from tests.core.plugin_packages import isolated_registry, readme_python_block  # noqa: F401 (fixture)


def test_editing_a_sibling_file_of_the_task_records_fresh_demonstrations(isolated_registry, tmp_path, monkeypatch):
    package = tmp_path / "site" / "my_package"
    (package / "assets").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "point_reach.py").write_text(readme_python_block("# my_package/point_reach.py"))
    (package / "assets" / "scene.xml").write_text('<mujoco model="scene"/>')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.import_module("my_package.point_reach")
    task = build_task({"name": "point_reach"})

    def cache_path():
        return cached_demonstrations(task, {"name": "point_reach"}, 2, 0, 1, tmp_path / "cache")[1]

    first = cache_path()
    assert cache_path() == first  # nothing changed: the cached file is reused
    (package / "assets" / "scene.xml").write_text('<mujoco model="scene"><option timestep="0.001"/></mujoco>')
    second = cache_path()
    assert second != first and second.exists()

    unrelated = task_source_digest(type(task))
    (tmp_path / "site" / "other_module.py").write_text("x = 1\n")  # outside the task's package
    (package / "notes.txt").write_text("not source")  # inside, but nothing a task loads
    assert task_source_digest(type(task)) == unrelated
