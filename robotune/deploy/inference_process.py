"""Policy inference in a child process, so that it never holds the control process's GIL.

Why it exists: the planner thread holds the GIL for most of a chunk (the NumPy fast path is many
small ops, each too short to release it), so in-thread inference can delay a tick by up to a GIL
switch interval, and a heavier policy by more. A child process has its own GIL.

What it measured (benchmarks/deploy_latency.py, DDIM-10 diffusion checkpoint, 2-core VM, load
1.0-1.4, joint states already taken on the control thread, see ros2_transport.py): it did NOT
help here. At 500 Hz, process vs thread: obs->cmd p99 9.0 vs 7.8 ms, overruns 305 vs 149,
stale ticks 1265 vs 994; at 100 Hz both gave obs->cmd p99 13-15 ms. With only two cores the
child competes for CPU with the simulator and the control thread, which costs more than the GIL
it frees. So it is opt-in (`RunnerConfig.inference_checkpoint`, `deploy_latency --inference
process`), for machines with spare cores or policies whose inference holds the GIL for longer.

Protocol: the child is `python -m robotune.deploy.inference_process` started with `subprocess`
(no multiprocessing, so nothing is pickled), talking over one end of a `socketpair` passed as a
file descriptor. Every frame is a 5-byte header (kind: 1 byte, payload length: uint32) and raw
bytes: the parent sends `P` + float32 observations (obs_horizon, obs_dim), `R` (reset) or `Q`
(quit); the child answers `C` + float64 inference ms + float32 chunk (horizon, action_dim), or
`E` + UTF-8 error text. The child reloads the policy from the checkpoint directory, which fully
describes it (robotune.core.checkpoint), seeds its own torch generator and warms the policy up
once before reporting ready (the first call costs ~140 ms).
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import subprocess
import sys
import time

import numpy as np

HEADER = struct.Struct("<cI")


class InferenceProcessError(RuntimeError):
    """The inference process failed or went away; the message says what it reported."""


def _send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    sock.sendall(HEADER.pack(kind, len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise InferenceProcessError("the inference process closed its socket")
        buf += part
    return bytes(buf)


def _recv(sock: socket.socket) -> tuple[bytes, bytes]:
    kind, n = HEADER.unpack(_recv_exact(sock, HEADER.size))
    return kind, _recv_exact(sock, n)


class InferenceProcess:
    """Parent side: submit an observation history, collect the chunk later; one request at a time."""

    def __init__(
        self,
        checkpoint: str,
        obs_shape: tuple[int, int],
        chunk_shape: tuple[int, int],
        deterministic: bool = True,
        seed: int = 0,
        start_timeout_s: float = 60.0,
    ) -> None:
        self.obs_shape = tuple(obs_shape)
        self.chunk_shape = tuple(chunk_shape)
        self._sock, child = socket.socketpair()
        argv = [sys.executable, "-m", "robotune.deploy.inference_process", "--checkpoint", str(checkpoint),
                "--fd", str(child.fileno()), "--seed", str(seed)] + ([] if deterministic else ["--stochastic"])
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        self._proc = subprocess.Popen(argv, pass_fds=(child.fileno(),), env=env)
        child.close()
        kind, payload = self._wait(start_timeout_s, "start")
        if kind != b"K":
            self.close()
            raise InferenceProcessError(f"inference process for {checkpoint} failed to start: {payload.decode(errors='replace')}")

    def _wait(self, timeout_s: float, what: str) -> tuple[bytes, bytes]:
        ready, _, _ = select.select([self._sock], [], [], timeout_s)
        if not ready:
            self.close()
            raise InferenceProcessError(f"no answer from the inference process within {timeout_s:.0f} s ({what})")
        return _recv(self._sock)

    def submit(self, obs: np.ndarray) -> None:
        """Start planning from obs (obs_horizon, obs_dim); the answer is read by `result`."""
        obs = np.ascontiguousarray(obs, dtype=np.float32).reshape(self.obs_shape)
        _send(self._sock, b"P", obs.tobytes())

    def reset(self) -> None:
        _send(self._sock, b"R")

    def result(self, block: bool, timeout_s: float = 5.0) -> tuple[np.ndarray, float] | None:
        """(chunk (horizon, action_dim) float64, inference ms) if one has arrived (or arrives within timeout_s if block)."""
        ready, _, _ = select.select([self._sock], [], [], timeout_s if block else 0.0)
        if not ready:
            if block:
                raise InferenceProcessError(f"the inference process answered nothing within {timeout_s:.0f} s")
            return None
        kind, payload = _recv(self._sock)
        if kind == b"E":
            raise InferenceProcessError(f"policy inference failed in the inference process: {payload.decode(errors='replace')}")
        infer_ms = struct.unpack_from("<d", payload)[0]
        chunk = np.frombuffer(payload, dtype=np.float32, offset=8).reshape(self.chunk_shape).astype(np.float64)
        return chunk, infer_ms

    def close(self, timeout_s: float = 5.0) -> None:
        if self._proc.poll() is None:
            try:
                _send(self._sock, b"Q")
                self._proc.wait(timeout=timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=timeout_s)
        self._sock.close()


def serve(checkpoint: str, fd: int, seed: int, deterministic: bool) -> None:
    """Child side: load the policy, warm it up, then answer requests until `Q` or the parent goes away."""
    import torch

    from robotune.core.checkpoint import load_checkpoint

    sock = socket.socket(fileno=fd)
    try:
        torch.set_num_threads(1)
        policy = load_checkpoint(checkpoint).policy.eval()
        cfg = policy.config
        obs_shape = (1, cfg.obs_horizon, policy.obs_dim)
        generator = torch.Generator().manual_seed(seed)
        policy.predict_chunk(torch.zeros(obs_shape), deterministic=deterministic, generator=torch.Generator().manual_seed(seed))
    except Exception as exc:  # reported to the parent, which raises with the text
        _send(sock, b"E", repr(exc).encode())
        return
    _send(sock, b"K")
    while True:
        try:
            kind, payload = _recv(sock)
        except InferenceProcessError:
            return  # parent gone
        if kind == b"Q":
            return
        if kind == b"R":
            policy.reset()
            continue
        try:
            obs = torch.from_numpy(np.frombuffer(payload, dtype=np.float32).reshape(obs_shape).copy())
            start = time.perf_counter()
            chunk = policy.predict_chunk(obs, deterministic=deterministic, generator=generator)[0]
            infer_ms = (time.perf_counter() - start) * 1e3
            _send(sock, b"C", struct.pack("<d", infer_ms) + chunk.numpy().astype(np.float32).tobytes())
        except Exception as exc:  # noqa: BLE001 - surfaced on the control thread as a fault
            _send(sock, b"E", repr(exc).encode())


def main() -> None:
    p = argparse.ArgumentParser(description="robotune policy inference process (started by ChunkPlanner)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true")
    args = p.parse_args()
    serve(args.checkpoint, args.fd, args.seed, deterministic=not args.stochastic)


if __name__ == "__main__":
    main()
