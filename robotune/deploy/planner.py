"""Action chunks planned ahead of time, so that inference never stalls the control loop.

The chunk schedule is `robotune.rollout.chunking.ChunkSchedule`, the one evaluation's
`ChunkController` uses (execute `act_steps` of each predicted chunk open loop, then replan); this
module decides when and where plans are computed, for a real-time loop:

- A plan is requested every `act_steps` ticks, from the observation history at that tick t, and
  computed in a background thread while the loop keeps sending the previous chunk's actions.
- Chunk entry i is the action for tick t + i (the policy predicts from its newest observation on).
  Entries before t + `lead_ticks` are never used: those ticks belong to the previous chunk while
  inference runs, so `lead_ticks` is the inference budget in control periods. This keeps actions
  time-aligned instead of executing them one inference-latency late.
- At a boundary the first `blend_steps` actions of the new chunk are mixed with the previous
  chunk's own predictions for the same ticks (linear ramp towards the new chunk), which removes the
  jump when consecutive chunks disagree.
- If a plan is late, the loop keeps using the previous chunk's remaining predictions; only when
  none is left does it get no action, and the safety layer holds.

`lead_ticks=0` reproduces ChunkController exactly (plan synchronously on the tick), at the price
of the tick waiting for inference; it is there for parity checks.

Where a plan is computed (the request and the schedule are the same in every case):
- `on_tick=True`: in the control thread, right after the tick's command is sent (`run_pending`).
  Nothing else in the process then wants the GIL while the loop ticks; it fits when inference
  takes well under a period (the runner decides from the warm-up plans, see runner.py).
- otherwise a background thread, for inference that spans several periods (`lead_ticks` > 1).
  (A child process with its own GIL was tried and measured slower on the 2-core machine; it is gone.)
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from robotune.core.policy import Policy
from robotune.rollout.chunking import ChunkSchedule


@dataclass
class PlannerStats:
    plans: int = 0
    plans_late: int = 0  # plans that arrived after the tick their first action was meant for
    requests_skipped: int = 0  # requests dropped because the previous plan was still running
    stale_actions_dropped: int = 0
    inference_ms_max: float = 0.0


class ChunkPlanner:
    """obs per tick in (`observe`), one action per tick out (`action`); chunks planned in the background."""

    def __init__(
        self,
        policy: Policy,
        lead_ticks: int = 1,
        blend_steps: int = 2,
        act_steps: int | None = None,
        deterministic: bool = True,
        seed: int = 0,
    ) -> None:
        cfg = policy.config
        if lead_ticks < 0 or blend_steps < 0:
            raise ValueError(f"lead_ticks ({lead_ticks}) and blend_steps ({blend_steps}) must be >= 0")
        if lead_ticks >= cfg.horizon:
            raise ValueError(f"lead_ticks ({lead_ticks}) must be below the policy's horizon ({cfg.horizon})")
        self.policy = policy
        self.lead_ticks = lead_ticks
        self.blend_steps = blend_steps
        # A chunk must still cover its act_steps after skipping the first lead_ticks entries.
        self.act_steps = min(act_steps or cfg.act_steps, cfg.horizon - lead_ticks)
        self.deterministic = deterministic
        self.generator = torch.Generator().manual_seed(seed)
        self.history: deque[np.ndarray] = deque(maxlen=cfg.obs_horizon)
        self.stats = PlannerStats()
        self.schedule = ChunkSchedule(1, cfg.horizon, policy.action_dim, blend_steps=blend_steps)
        self._schedule_tick = 0  # the tick of the schedule's current step
        self._next_request_tick: int | None = None
        self._generation = 0
        self._in_flight = False
        self._in_flight_tick = 0
        self._results: queue.Queue = queue.Queue()
        self._requests: queue.Queue = queue.Queue(maxsize=2)  # one request plus the stop marker
        self._worker: threading.Thread | None = None
        self.on_tick = False  # set before the first plan; see the module docstring
        self._pending: tuple[int, int, torch.Tensor] | None = None  # the request run_pending will compute

    # -- episode -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget history and queued actions (new episode).

        A plan still running is waited for and discarded before the policy's own reset: a stateful
        policy reset while the worker is inside its `predict_chunk` would start the new episode from
        the old episode's observation.
        """
        self._generation += 1
        self._pending = None
        if self._in_flight:
            self._merge_results(tick=0, block=True)  # its generation is stale, so it is dropped
        self.history.clear()
        self.schedule.clear()
        self._next_request_tick = None
        self.policy.reset()

    def warm_up(self, obs: np.ndarray, plans: int = 3) -> float:
        """Plan `plans` times and throw the chunks away, before the loop starts; returns the slowest
        plan after the first, in seconds.

        A policy's first call pays one-off costs (loading the compiled inference kernel takes ~0.5 s,
        compiling it on a new machine ~7 s, and the twin is built from the weights) that would
        otherwise stall the running loop on its first plan. A separate generator keeps the seeded
        one's stream, so a warmed-up run plans exactly what a cold one would.
        """
        history = np.repeat(np.asarray(obs, np.float32)[None, None], self.policy.config.obs_horizon, axis=1)
        generator = torch.Generator().manual_seed(0)
        seconds = []
        for _ in range(plans):
            start = time.perf_counter()
            self.policy.predict_chunk(torch.from_numpy(history), self.deterministic, generator)
            seconds.append(time.perf_counter() - start)
        self.reset()
        return max(seconds[1:] or seconds)

    def observe(self, obs: np.ndarray) -> None:
        """Append this tick's observation (obs_dim,). A fresh history is the first observation repeated."""
        obs = np.asarray(obs, dtype=np.float32)
        if not self.history:
            self.history.extend([obs] * self.history.maxlen)
        else:
            self.history.append(obs)

    # -- per tick ----------------------------------------------------------------------------
    def action(self, tick: int, wait: bool = False) -> np.ndarray | None:
        """The action for `tick`, or None if no plan covers it yet. `wait` blocks on a running plan."""
        # A stepped simulation has no wall clock: a running plan always "meets its budget", so wait
        # for it before anything else, which also keeps runs deterministic.
        self.schedule.advance(tick - self._schedule_tick)
        self._schedule_tick = tick
        self._merge_results(tick, block=wait and self._in_flight)
        if self._next_request_tick is None or tick >= self._next_request_tick:
            self._request(tick)
        if wait and self._in_flight and tick >= self._in_flight_tick + self.lead_ticks:
            self._merge_results(tick, block=True)
        action = self.schedule.current()[0] if self.schedule.has_action()[0] else None
        self.schedule.advance()
        self._schedule_tick = tick + 1
        return action

    def _request(self, tick: int) -> None:
        if not self.history:
            return
        obs = torch.from_numpy(np.stack(self.history)[None])  # (1, obs_horizon, obs_dim)
        if self.lead_ticks == 0:
            self._store(tick, self._infer(obs), tick)
        elif self._in_flight:
            self.stats.requests_skipped += 1
            return
        else:
            self._in_flight = True
            self._in_flight_tick = tick
            if self.on_tick:
                self._pending = (self._generation, tick, obs)
            else:
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="chunk-planner", daemon=True)
                    self._worker.start()
                self._requests.put((self._generation, tick, obs))
        self._next_request_tick = tick + self.act_steps

    def _infer(self, obs: torch.Tensor) -> np.ndarray:
        start = time.perf_counter()
        chunk = self.policy.predict_chunk(obs, deterministic=self.deterministic, generator=self.generator)[0]
        self.stats.inference_ms_max = max(self.stats.inference_ms_max, (time.perf_counter() - start) * 1e3)
        self.stats.plans += 1
        return chunk.numpy().astype(np.float64)

    def run_pending(self) -> None:
        """With `on_tick`: compute the plan requested this tick, if any. The runner calls it after sending."""
        if self._pending is not None:
            request, self._pending = self._pending, None
            self._compute(*request)

    def _work(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            self._compute(*item)

    def _compute(self, generation: int, tick: int, obs: torch.Tensor) -> None:
        try:
            chunk = self._infer(obs)
        except Exception as exc:  # surfaced on the control thread, which turns it into a fault
            chunk = exc
        self._results.put((generation, tick, chunk))

    def _merge_results(self, tick: int, block: bool = False) -> None:
        if block:
            self.run_pending()  # waiting for a plan nobody else would compute
        while True:
            try:
                generation, obs_tick, chunk = self._results.get(block=block, timeout=5.0 if block else None)
            except queue.Empty:
                return
            block = False
            self._in_flight = False
            if isinstance(chunk, Exception):
                raise RuntimeError(f"policy inference failed: {chunk!r}") from chunk
            if generation == self._generation:
                self._store(obs_tick, chunk, tick)

    def _store(self, obs_tick: int, chunk: np.ndarray, tick: int) -> None:
        """Merge a chunk planned from the observation of `obs_tick` into the schedule, whose current step is `tick`."""
        if obs_tick + self.lead_ticks < tick:
            self.stats.plans_late += 1
        self.stats.stale_actions_dropped += self.schedule.merge(chunk[None], age=tick - obs_tick, skip=self.lead_ticks)

    def close(self) -> None:
        if self._worker is not None:
            self._requests.put(None)
            self._worker.join(timeout=5.0)
            self._worker = None
