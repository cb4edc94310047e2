"""Observation keys: one grammar and one lookup for every place that picks observation parts by name.

A key is `name` or `name[start:stop]` (Python slice bounds, either may be omitted). Two places use it:

- dataset importers (`robotune.data`), where a name is an array in the file (robomimic's
  `robot0_eef_pos`, diffusion_policy's `state[0:2]`) and the slice takes columns of its flattened steps;
- observation processors (`robotune.processing.pipeline`), where a name is an entry of the task's
  observation vector (`goal.x`) or any dotted prefix of entries (`goal` = `goal.x`, `goal.y`), and
  the slice takes entries of that group.

Both resolve a key with `resolve_key`, so the syntax, the lookup and the errors are the same.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

_KEY = re.compile(r"^(?P<name>[^\[\]]+?)(\[(?P<start>-?\d*):(?P<stop>-?\d*)\])?$")


@dataclass(frozen=True)
class ObsKey:
    """A named array or group, optionally restricted to columns [start:stop)."""

    name: str
    start: int | None = None
    stop: int | None = None

    def __str__(self) -> str:
        if self.start is None and self.stop is None:
            return self.name
        return f"{self.name}[{'' if self.start is None else self.start}:{'' if self.stop is None else self.stop}]"


def resolve_key(text: str, available: Collection[str], where: str, error: type[Exception] = ValueError) -> ObsKey:
    """The key `text` names, checked against the `available` names; `error(message)` names `where`,
    the key and what is available otherwise."""
    match = _KEY.match(str(text).strip())
    if not match:
        raise error(f"{where}: observation key {text!r} is not 'name' or 'name[start:stop]'")
    if match["name"] not in available:
        raise error(f"{where}: no observation key '{match['name']}'; available: {sorted(available)}")
    start, stop = match["start"], match["stop"]
    return ObsKey(match["name"], int(start) if start else None, int(stop) if stop else None)


def columns_by_key(names: Sequence[str]) -> dict[str, list[int]]:
    """Every entry name and every dotted prefix of one -> the columns it covers, in vector order.

    ("shoulder.pos", "elbow.pos", "shoulder.vel") -> {"shoulder.pos": [0], "shoulder": [0, 2], ...}.
    Prefixes end at a dot, so `obs.1` never covers `obs.10`."""
    groups: dict[str, list[int]] = {}
    for column, name in enumerate(names):
        parts = name.split(".")
        for n in range(1, len(parts) + 1):
            groups.setdefault(".".join(parts[:n]), []).append(column)
    return groups


def select_columns(keys: Sequence[str], names: Sequence[str], where: str, error: type[Exception] = ValueError) -> list[int]:
    """The columns of a vector named `names` that `keys` select, in key order; each column at most once."""
    groups = columns_by_key(names)
    selected: list[int] = []
    for text in keys:
        key = resolve_key(text, groups, where, error)
        columns = groups[key.name][key.start : key.stop]
        if not columns:
            raise error(f"{where}: key '{key}' selects none of {[names[c] for c in groups[key.name]]}")
        twice = [names[c] for c in columns if c in selected]
        if twice:
            raise error(f"{where}: key '{key}' selects {twice} again; name each entry once")
        selected += columns
    return selected
