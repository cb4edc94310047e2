"""The off-policy replay buffer: transitions in memory-mapped arrays beside the checkpoints.

Each field is one preallocated `.npy` file under `<run_dir>/replay/`, opened with `np.load(...,
mmap_mode="r+")`, so a buffer of millions of transitions costs page cache, not Python objects, and
survives the process. A checkpoint records the buffer's `size` and write `position` (and flushes
the files first); resuming reopens the files and continues from there, so nothing collected before
the checkpoint is refilled. What cannot be exact: transitions written after the last checkpoint by
a run that was then killed stay in slots past `position`, and are overwritten as the resumed run
writes (the sampler only reads the first `size` slots, so before the buffer is full they are never
seen; once it has wrapped, at most those slots hold transitions of the lost timeline until
overwritten).

Transitions (raw units, flat):
    obs (obs_dim,)  action (action_dim,)  reward ()  next_obs (obs_dim,)  discount ()  terminated ()
`discount` is γ^k for a k-step chunk; the bootstrap term is discount * (1 - terminated) * Q(next).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class ReplayBuffer:
    def __init__(self, directory: str | Path, capacity: int, obs_dim: int, action_dim: int) -> None:
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        shapes = {
            "obs": (obs_dim,),
            "action": (action_dim,),
            "reward": (),
            "next_obs": (obs_dim,),
            "discount": (),
            "terminated": (),
        }
        self.arrays: dict[str, np.ndarray] = {name: self._open(name, (capacity, *shape)) for name, shape in shapes.items()}
        self.size = 0
        self.position = 0

    def _open(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        path = self.directory / f"{name}.npy"
        if path.exists():
            array = np.load(path, mmap_mode="r+")
            if array.shape == shape and array.dtype == np.float32:
                return array
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)

    def add(self, **batch: np.ndarray) -> None:
        """Append n transitions: each field an array with leading dimension n."""
        n = len(batch["reward"])
        index = (self.position + np.arange(n)) % self.capacity
        for name, array in self.arrays.items():
            array[index] = np.asarray(batch[name], np.float32).reshape(n, *array.shape[1:])
        self.position = int((self.position + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def add_decisions(self, decisions) -> None:
        """Append a rollout's `DecisionBatch` (robotune.rollout.chunk_rollout): observation windows flattened,
        the executed actions from its payload's "action" (n, action_dim)."""
        n = len(decisions)
        self.add(
            obs=decisions.obs.reshape(n, -1),
            action=decisions.payload["action"].cpu().numpy(),
            reward=decisions.reward,
            next_obs=decisions.next_obs.reshape(n, -1),
            discount=decisions.discount,
            terminated=decisions.terminated,
        )

    def sample(self, batch_size: int, generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
        """A uniform batch as float32 tensors on `device`; indices drawn with `generator` (CPU)."""
        index = torch.randint(self.size, (batch_size,), generator=generator).numpy()
        index.sort()  # ascending reads are kinder to the page cache; order within a batch does not matter
        return {name: torch.from_numpy(array[index]).to(device) for name, array in self.arrays.items()}

    def state_dict(self) -> dict[str, int | str]:
        for array in self.arrays.values():
            array.flush()
        return {"size": self.size, "position": self.position, "capacity": self.capacity, "directory": str(self.directory)}

    def load_state_dict(self, state: dict) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay buffer in {self.directory} has capacity {state['capacity']}, the config asks {self.capacity}")
        self.size, self.position = int(state["size"]), int(state["position"])
