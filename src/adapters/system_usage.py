"""The machine's CPU and memory use, read from /proc on Linux (psutil elsewhere, if installed).

The figures are system-wide, as FEDn's client reports them: memory in use is
(MemTotal - MemAvailable) / MemTotal, and CPU busy time is everything in the
``cpu`` line of /proc/stat except idle and iowait.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..domain.usage import UsageReading

PROC = Path("/proc")


class ProcUsageProbe:
    """The domain's UsageProbe for Linux."""

    def __init__(self, proc: Path = PROC) -> None:
        self._stat = proc / "stat"
        self._meminfo = proc / "meminfo"

    def read(self) -> UsageReading:
        busy, total = _cpu_times(self._stat.read_text(encoding="ascii"))
        return UsageReading(busy, total, _memory_percent(self._meminfo.read_text(encoding="ascii")))


class PsutilUsageProbe:
    """The same figures through psutil, for platforms without /proc."""

    def __init__(self, psutil: Any) -> None:
        self._psutil = psutil

    def read(self) -> UsageReading:
        times = self._psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = float(sum(times))
        return UsageReading(total - idle, total, float(self._psutil.virtual_memory().percent))


class NoUsageProbe:
    """Neither /proc nor psutil: usage cannot be measured (the meter warns once)."""

    def read(self) -> UsageReading:
        raise OSError("this system has no /proc and psutil is not installed")


def system_usage_probe() -> ProcUsageProbe | PsutilUsageProbe | NoUsageProbe:
    if (PROC / "stat").is_file() and (PROC / "meminfo").is_file():
        return ProcUsageProbe()
    try:
        return PsutilUsageProbe(importlib.import_module("psutil"))
    except ImportError:
        return NoUsageProbe()


def _cpu_times(stat: str) -> tuple[float, float]:
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            # user nice system idle iowait irq softirq steal (guest time is already in user).
            values = [float(v) for v in fields[1:9]]
            if len(values) < 4:
                break
            total = sum(values)
            idle = values[3] + (values[4] if len(values) > 4 else 0.0)
            return total - idle, total
    raise OSError("/proc/stat has no usable 'cpu' line")


def _memory_percent(meminfo: str) -> float:
    found: dict[str, float] = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable") and rest.split():
            found[key] = float(rest.split()[0])
    total, available = found.get("MemTotal"), found.get("MemAvailable")
    if not total or available is None:
        raise OSError("/proc/meminfo has no MemTotal/MemAvailable")
    return round(100.0 * (total - available) / total, 1)
