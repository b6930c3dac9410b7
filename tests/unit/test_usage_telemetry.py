"""CPU/memory measured from /proc counters, sent as telemetry every interval and in heartbeats."""

from __future__ import annotations

from pathlib import Path

import pytest
from fedclient.adapters.system_usage import ProcUsageProbe, system_usage_probe
from fedclient.domain.errors import TransientError
from fedclient.domain.model import ResourceUsage
from fedclient.domain.usage import UsageMeter, UsageReading, cpu_percent
from fedclient.testing.fakes import ScriptedUsageProbe
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.world import World

STAT = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\nintr 1 2 3\n"
MEMINFO = "MemTotal:       1000000 kB\nMemFree:         100000 kB\nMemAvailable:    250000 kB\n"


def fake_proc(root: Path, stat: str = STAT, meminfo: str = MEMINFO) -> Path:
    root.mkdir(exist_ok=True)
    (root / "stat").write_text(stat)
    (root / "meminfo").write_text(meminfo)
    return root


def test_proc_probe_reads_busy_time_and_memory_in_use(tmp_path: Path) -> None:
    reading = ProcUsageProbe(fake_proc(tmp_path)).read()
    # busy = user + system (idle 800 and iowait 50 excluded); memory = (total - available) / total
    assert reading == UsageReading(cpu_busy=150.0, cpu_total=1000.0, memory_percent=75.0)


@pytest.mark.parametrize(
    ("stat", "meminfo", "message"),
    [("intr 1\n", MEMINFO, "no usable 'cpu' line"), (STAT, "MemTotal: 5 kB\n", "MemAvailable")],
)
def test_unreadable_counters_are_os_errors(tmp_path: Path, stat: str, meminfo: str, message: str) -> None:
    with pytest.raises(OSError, match=message):
        ProcUsageProbe(fake_proc(tmp_path, stat, meminfo)).read()


def test_this_machine_is_measurable() -> None:
    reading = system_usage_probe().read()  # Linux CI: /proc
    assert reading.memory_percent is not None and 0 < reading.memory_percent < 100
    assert reading.cpu_total is not None and reading.cpu_busy is not None


def test_meter_reports_cpu_over_its_own_interval() -> None:
    probe = ScriptedUsageProbe(
        UsageReading(100, 1000, 40.0),
        UsageReading(150, 1100, 41.0),  # 50 of 100 busy
        OSError("gone"),  # unreadable: nothing known, no crash
        UsageReading(160, 1200, 42.0),  # no previous reading to compare with
        UsageReading(260, 1300, 43.0),  # all busy
    )
    meter = UsageMeter(probe)
    assert [meter.sample() for _ in range(4)] == [
        ResourceUsage(50.0, 41.0),
        ResourceUsage(None, None),
        ResourceUsage(None, 42.0),
        ResourceUsage(100.0, 43.0),
    ]


@given(
    st.tuples(*[st.floats(0, 1e9)] * 4),
)
def test_cpu_percent_is_a_percentage_or_unknown(values: tuple[float, float, float, float]) -> None:
    b1, t1, b2, t2 = values
    result = cpu_percent(UsageReading(b1, t1), UsageReading(b2, t2))
    assert result is None if t2 <= t1 else 0.0 <= result <= 100.0  # type: ignore[operator]


async def test_telemetry_every_interval_and_usage_in_heartbeats(tmp_path: Path, archive: Path) -> None:
    probe = ScriptedUsageProbe(*(UsageReading(10 * i, 100 * i, 30.0 + i) for i in range(200)))
    w = World(tmp_path, archive, telemetry_interval=5.0, heartbeat_interval=2.0, usage_probe=probe)
    await w.run_until(lambda: len(w.combiner.telemetry) >= 3)

    sent = [usage for client, usage in w.combiner.telemetry]
    assert {client for client, _ in w.combiner.telemetry} == {"cid-1"}
    assert all(u.cpu_percent == 10.0 and u.memory_percent is not None for u in sent)
    telemetry_sleeps = [s for s in w.clock.sleeps if s == 5.0]
    assert len(telemetry_sleeps) >= len(sent) - 1  # the first one goes out at once, then every 5 s
    beats = [u for u in w.combiner.heartbeat_usage if u is not None]
    assert beats and all(u.cpu_percent == 10.0 for u in beats)


async def test_telemetry_off_or_failing_never_ends_the_session(tmp_path: Path, archive: Path) -> None:
    w = World(
        tmp_path, archive, telemetry_interval=0, usage_probe=ScriptedUsageProbe(UsageReading(1, 10, 5.0))
    )
    await w.run_until(lambda: len(w.combiner.heartbeats) >= 3)
    assert w.combiner.telemetry == [] and "send_telemetry" not in [name for name, _ in w.combiner.attempts]

    w = World(
        tmp_path / "2",
        archive,
        telemetry_interval=1.0,
        usage_probe=ScriptedUsageProbe(UsageReading(1, 10, 5.0)),
    )
    w.combiner.fail_next["send_telemetry"] = 3
    w.combiner.fail_with["send_telemetry"] = TransientError("telemetry: unavailable")
    await w.run_until(lambda: len(w.combiner.telemetry) >= 2)
    assert [name for name, _ in w.combiner.attempts].count(
        "send_telemetry"
    ) >= 5  # every attempt recorded, failures included
    assert len(w.combiner.connects) == 1  # the same session throughout
