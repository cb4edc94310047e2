"""core/ holds only the small contracts: it imports no plugin and no deploy code, and stays small.

Both are stated goals of the package layout (README, "Layout"); a plugin author reads core/ and
one example plugin, so machinery that creeps into core is caught here rather than in review.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "robotune" / "core"
FORBIDDEN = ("robotune.plugins", "robotune.deploy")
LINE_BUDGET = 1500  # `wc -l robotune/core/*.py`, the figure issue 10 sets


def imported_modules(source: str, package: str = "robotune.core") -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in `source`, module-level or inside a function; a
    `from a import b` also yields `a.b`, since b may be a submodule."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            yield node.lineno, module
            yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)


def forbidden_imports(source: str) -> list[str]:
    return [f"line {line}: {name}" for line, name in imported_modules(source)
            if any(name == prefix or name.startswith(prefix + ".") for prefix in FORBIDDEN)]


def test_the_scan_finds_every_form_of_a_forbidden_import():
    source = (
        "import robotune.deploy.runner\n"
        "from robotune.plugins.sac import SAC\n"
        "from robotune import plugins\n"
        "from .. import deploy\n"
        "def lazy():\n"
        "    from robotune.plugins import networks\n"
        "from robotune.core import registry\n"
        "import robotune.plugins_extra\n"
    )
    lines = {entry.split(":")[0] for entry in forbidden_imports(source)}
    assert lines == {"line 1", "line 2", "line 3", "line 4", "line 6"}  # not core's own, nor a lookalike name


def test_core_imports_no_plugin_and_no_deploy_code():
    offenders = {path.name: found for path in sorted(CORE.rglob("*.py")) if (found := forbidden_imports(path.read_text()))}
    assert not offenders, f"robotune/core imports plugin or deploy code: {offenders}"


def test_core_stays_within_its_line_budget():
    lines = {path.relative_to(CORE).as_posix(): path.read_text().count("\n") for path in CORE.rglob("*.py")}
    largest = ", ".join(f"{name} {count}" for name, count in sorted(lines.items(), key=lambda item: -item[1])[:3])
    assert sum(lines.values()) < LINE_BUDGET, (
        f"robotune/core has {sum(lines.values())} lines, over its budget of {LINE_BUDGET} (largest: {largest}); "
        "move machinery that is not a contract to the package named for what it does"
    )
