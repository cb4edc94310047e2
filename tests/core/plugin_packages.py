"""Plugin packages for tests, installed the way pip leaves them but without running pip.

A directory holding a package's modules and its `<name>-<version>.dist-info` (METADATA and
entry_points.txt) is an installed distribution for `importlib.metadata` once the directory is on
sys.path (in-process) or PYTHONPATH (in a subprocess). Nothing is written to site-packages.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from robotune.core import registry


def write_distribution(
    site: Path, name: str, version: str, entry_points: dict[str, str], files: dict[str, str] | None = None
) -> None:
    """Install distribution `name` into `site`: `files` maps relative paths to their text, and
    `entry_points` maps entry-point names to modules in the `robotune.plugins` group."""
    for relative_path, text in (files or {}).items():
        path = site / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{entry} = {module}\n" for entry, module in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{lines}")


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Run against copies of the registry's tables, and forget modules imported meanwhile, so that
    test plugins do not leak into other tests."""
    registry.load_plugins()
    monkeypatch.setattr(registry, "_plugins", dict(registry._plugins))
    monkeypatch.setattr(registry, "_clashes", dict(registry._clashes))
    monkeypatch.setattr(registry, "_problems", list(registry._problems))
    modules_before = set(sys.modules)
    yield registry
    for module in set(sys.modules) - modules_before:
        if module.startswith(("robotune_test_", "my_package")):
            del sys.modules[module]


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_block(first_line: str) -> str:
    """The README's ```python block that starts with `first_line`, so tests run the documented code."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    matching = [block for block in blocks if block.startswith(first_line + "\n")]
    assert len(matching) == 1, f"README.md has {len(matching)} python blocks starting with {first_line!r}"
    return matching[0]
