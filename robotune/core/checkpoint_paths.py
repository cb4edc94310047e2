"""Where checkpoints are on disk: a checkpoint directory, a run directory or its checkpoints/ directory.

Apart from the checkpoint format (`checkpoint.py`) because it imports no torch: `robotune deploy`
finds the checkpoint and reads its task spec, and starts talking to the robot, before importing
torch (~1.5 s) to load the policy.
"""

from __future__ import annotations

from pathlib import Path

STEP_PREFIX = "step_"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read; the message names the directory and the file."""


def list_checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first. Temporary directories (leading dot) are ignored."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    return sorted(p for p in checkpoints_dir.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX))


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint directory, a run directory or a run's checkpoints directory."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    for candidates in (path / "checkpoints", path):
        found = list_checkpoints(candidates)
        if found:
            return found[-1]
    raise CheckpointError(f"no checkpoint at {path}: expected a directory with meta.json, or a run directory with checkpoints/")
