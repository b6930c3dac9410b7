"""Reconnect supervision on a fake clock: bounded re-assignment, heartbeat escalation, fail-fast, logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fedclient.domain.errors import PermanentError
from fedclient.domain.model import Assignment, AssignmentStatus, CombinerAddress

from tests.unit.world import ASSIGNED, COMBINER, World, train_task

TRY_AGAIN = Assignment(AssignmentStatus.TRY_AGAIN, "No combiner available yet")
DOWN = Assignment(AssignmentStatus.UNREACHABLE, "connection refused")
OTHER = CombinerAddress("127.0.0.2", 12081)


async def test_reassignment_is_bounded_and_goes_back_to_the_old_combiner(
    tmp_path: Path, archive: Path
) -> None:
    """The probe's case: the controller keeps saying TRY_AGAIN; the combiner comes back meanwhile."""
    w = World(tmp_path, archive, ASSIGNED, TRY_AGAIN, reassign_after=2, reassign_budget=3)
    w.combiner.refuse_connects = 7
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))

    assert w.life.reassignments == 3  # after failures 2, 4 and 6
    assert len(w.discovery.requests) == 1 + 3 * 3, "each re-assignment asks at most its budget"
    assert {address for address, _ in w.combiner.connects} == {COMBINER}
    assert len(w.combiner.connects) == 8  # 7 refused, then the old combiner is back
    assert len(w.combiner.updates) == 1
    assert [name for name, _ in w.combiner.attempts].count("send_update") == 1


async def test_an_unreachable_controller_during_reassignment_is_bounded_too(
    tmp_path: Path, archive: Path
) -> None:
    w = World(tmp_path, archive, ASSIGNED, DOWN, reassign_after=1, reassign_budget=2)
    w.combiner.refuse_connects = 3
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert len(w.discovery.requests) == 1 + 2 * w.life.reassignments
    assert w.life.combiner == COMBINER


async def test_reassignment_takes_the_combiner_the_controller_gives(tmp_path: Path, archive: Path) -> None:
    moved = Assignment(AssignmentStatus.ASSIGNED, combiner=OTHER, client_id="cid-1")
    w = World(tmp_path, archive, ASSIGNED, moved, reassign_after=2)
    w.combiner.refuse_connects = 2
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert [address for address, _ in w.combiner.connects] == [COMBINER, COMBINER, OTHER]
    assert w.life.combiner == OTHER
    assert len(w.discovery.requests) == 2


async def test_heartbeat_misses_past_the_limit_force_a_reconnect(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, heartbeat_miss_limit=3)
    w.combiner.fail_next["heartbeat"] = 3
    await w.run_until(lambda: len(w.combiner.connects) >= 2 and len(w.combiner.heartbeats) >= 2)
    beats = [name for name, _ in w.combiner.attempts if name == "heartbeat"]
    assert len(beats) >= 4  # 3 missed on the first link, then beating on the second
    assert w.life.connects == 2


async def test_heartbeat_misses_below_the_limit_keep_the_connection(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, heartbeat_miss_limit=3)
    w.combiner.fail_next["heartbeat"] = 2
    await w.run_until(lambda: len(w.combiner.heartbeats) >= 3)
    assert len(w.combiner.connects) == 1


@pytest.mark.parametrize("call", ["tasks", "heartbeat"])
async def test_a_permanent_error_fails_fast(tmp_path: Path, archive: Path, call: str) -> None:
    w = World(tmp_path, archive)
    w.combiner.fail_next[call] = 1
    w.combiner.fail_with[call] = PermanentError(
        "task stream to h:1 failed: UNIMPLEMENTED — is this a FEDn 0.33 combiner? wrong host or port?"
    )
    with pytest.raises(PermanentError, match=r"is this a FEDn 0\.33 combiner"):
        await w.life.run(w.stop)
    assert len(w.combiner.connects) == 1, "no retry of a permanent error"


async def test_every_backoff_and_the_recovery_are_logged(
    tmp_path: Path, archive: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fedclient")
    w = World(tmp_path, archive, ASSIGNED)
    w.combiner.refuse_connects = 3
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    lines = [r.getMessage() for r in caplog.records]
    backoffs = [line for line in lines if line.startswith(f"reconnecting to {COMBINER.target} in ")]
    assert [line.rsplit("(", 1)[1] for line in backoffs] == ["attempt 2)", "attempt 3)", "attempt 4)"]
    [back] = [line for line in lines if "reached after" in line]
    assert back.startswith(f"combiner {COMBINER.target} reached after 4 tries, ")
    assert back.endswith(" s")


async def test_a_lost_connection_coming_back_is_logged_with_tries_and_time(
    tmp_path: Path, archive: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fedclient")
    w = World(tmp_path, archive, ASSIGNED)

    def connected_then_lost() -> bool:
        if len(w.combiner.connects) == 1 and not w.combiner.refuse_connects:
            w.combiner.refuse_connects = 6  # the combiner goes away for six tries...
            w.combiner.end_stream("cid-1")  # ...right after the first connection
            w.combiner.submit("cid-1", train_task())  # and has a task when it is back
        return bool(w.combiner.updates)

    await w.run_until(connected_then_lost)
    lines = [r.getMessage() for r in caplog.records]
    [back] = [line for line in lines if " back after " in line]
    seconds = float(back.rsplit(", ", 1)[1].removesuffix(" s"))
    assert back.startswith(f"combiner {COMBINER.target} back after 7 tries, ") and seconds > 0


async def test_controller_recovery_is_logged(
    tmp_path: Path, archive: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fedclient")
    w = World(tmp_path, archive, DOWN, DOWN, ASSIGNED)
    await w.run_until(lambda: bool(w.combiner.connects))
    lines = [r.getMessage() for r in caplog.records]
    assert sum("controller unreachable (connection refused); attempt" in line for line in lines) == 2
    assert any(line.startswith("controller answered after 3 tries, ") for line in lines)
