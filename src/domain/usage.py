"""CPU and memory use from raw counters: the numbers the client reports in telemetry and heartbeats.

A probe (an adapter) reads cumulative CPU times and the memory in use; a meter turns
two successive readings into a CPU percentage over the time between them, so each
loop that reports usage (heartbeat, telemetry) measures over its own interval.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from .model import ResourceUsage

log = logging.getLogger("fedclient.usage")


@dataclass(frozen=True)
class UsageReading:
    """One look at the machine. CPU times are cumulative (any unit, the same for both)."""

    cpu_busy: float | None = None
    cpu_total: float | None = None
    memory_percent: float | None = None


class UsageProbe(Protocol):
    def read(self) -> UsageReading:
        """Read the counters now; raise OSError when they cannot be read."""
        ...


class UsageMeter:
    """CPU percent since the previous sample (the first one: since the meter was made)."""

    def __init__(self, probe: UsageProbe) -> None:
        self._probe = probe
        self._warned = False
        self._last = self._read()

    def _read(self) -> UsageReading:
        try:
            return self._probe.read()
        except OSError as exc:
            if not self._warned:
                log.warning("cannot measure CPU and memory use: %s", exc)
                self._warned = True
            return UsageReading()

    def sample(self) -> ResourceUsage:
        reading, last = self._read(), self._last
        self._last = reading
        return ResourceUsage(cpu_percent(last, reading), reading.memory_percent)


def cpu_percent(before: UsageReading, after: UsageReading) -> float | None:
    """Busy share of the CPU time between two readings, 0-100; None when it cannot be told."""
    if None in (before.cpu_busy, before.cpu_total, after.cpu_busy, after.cpu_total):
        return None
    assert before.cpu_busy is not None and before.cpu_total is not None
    assert after.cpu_busy is not None and after.cpu_total is not None
    total = after.cpu_total - before.cpu_total
    if total <= 0:
        return None
    return min(100.0, max(0.0, 100.0 * (after.cpu_busy - before.cpu_busy) / total))
