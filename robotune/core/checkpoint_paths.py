"""Finding a checkpoint on disk, without torch: `robotune deploy` starts the robot side before importing it."""

from pathlib import Path

STEP_PREFIX = "step_"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read; the message names the directory and the file."""


def list_checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first. Temporary directories (leading dot) are ignored."""
    checkpoints_dir = Path(checkpoints_dir)
    entries = checkpoints_dir.iterdir() if checkpoints_dir.is_dir() else ()
    return sorted(p for p in entries if p.is_dir() and p.name.startswith(STEP_PREFIX))


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint directory, a run directory or a run's checkpoints directory."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    found = list_checkpoints(path / "checkpoints") or list_checkpoints(path)
    if not found:
        raise CheckpointError(f"no checkpoint at {path}: expected a directory with meta.json, or a run directory with checkpoints/")
    return found[-1]
