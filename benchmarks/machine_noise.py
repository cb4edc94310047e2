"""How much CPU time the host took from this (virtual) machine while a benchmark ran.

Why: on a shared VM the hypervisor now and then runs something else on our vCPUs. Linux counts
that time as "steal" in /proc/stat. A latency tail can then come from the machine, not the code:
on the 2-core development VM a busy-wait loop with nothing else running showed a 100 Hz jitter p99
of 0.03 ms in a 5 s window with 2% steal and 5.4 ms in one with 4.7%. The benchmarks print the
steal share beside their tails so that runs can be compared.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PROC_STAT = Path("/proc/stat")


def steal_ticks() -> int | None:
    """Total steal time of all CPUs so far, in clock ticks; None where the kernel does not report it."""
    try:
        fields = PROC_STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # "cpu user nice system idle iowait irq softirq steal ...": steal is the 8th value.
    return int(fields[8]) if fields[0] == "cpu" and len(fields) > 8 else None


class StealMeter:
    """Started at construction; `percent()` is the steal since then as a share of all CPUs' time."""

    def __init__(self) -> None:
        self._start_ticks, self._start_s = steal_ticks(), time.monotonic()

    def percent(self) -> float | None:
        """In percent, rounded to 0.01; None where the kernel does not report steal."""
        end_ticks, wall_s = steal_ticks(), time.monotonic() - self._start_s
        if self._start_ticks is None or end_ticks is None or wall_s <= 0:
            return None
        cpu_ticks = wall_s * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        return round(100.0 * (end_ticks - self._start_ticks) / cpu_ticks, 2)
