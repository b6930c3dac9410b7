"""The observer port: the status board over a real lifecycle (in-memory fakes), log context and JSON logs."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.vocabulary import UPDATE_DONE
from fedclient.app.logs import configure_logging
from fedclient.domain.model import TaskKind
from fedclient.domain.observe import Link, TransferKind, log_context, log_scope
from fedclient.domain.state import ClientState
from fedclient.domain.status import StatusBoard, human_bytes, status_line, transfer_summary
from fedclient.testing.fakes import RecordingObserver as Recorder

from tests.unit.world import World, lines, train_task


@pytest.fixture
def root_logging() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


async def test_board_follows_a_training_task(
    tmp_path: Path, archive: Path, root_logging: io.StringIO
) -> None:
    configure_logging("INFO", ["a-secret-token-123"], log_format="json", stream=root_logging)
    recorder = Recorder()
    board = StatusBoard([recorder], now=time.monotonic)
    w = World(tmp_path, archive, observer=board)
    w.container.connector().observer = board  # type: ignore[attr-defined]
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: any(s.text == UPDATE_DONE for s in lines(w.combiner.statuses)))
    # done(), not any key: reading a missing key of the tasks counter adds it with 0
    await w.run_until(lambda: board.snapshot.done() + board.snapshot.failed() >= 1)

    snap = board.snapshot
    assert snap.tasks[("train", "ok")] == 1 and snap.done() == 1 and snap.failed() == 0
    assert (snap.session_id, snap.round_id, snap.state) == ("s1", "1", ClientState.IDLE)
    assert snap.combiner == "127.0.0.1:12080" and snap.connects == 1
    kinds = [e[0] for e in recorder.events]
    assert kinds[0] == "link" and recorder.events[0][1] is Link.CONNECTING
    assert ("link", Link.CONNECTED, "127.0.0.1:12080") in recorder.events
    assert kinds.index("started") < kinds.index("finished")
    assert ("finished", TaskKind.TRAIN, True) in recorder.events
    assert recorder.events[-1][:2] == ("link", Link.DISCONNECTED), "stopping closes the link"
    # the model went down and the update up through the port, inside the task
    transfers = [e for e in recorder.events if e[0] == "transfer"]
    assert [(e[1], e[2]) for e in transfers][:1] == [(TransferKind.MODEL_DOWNLOAD, "seed")]
    assert transfers[1][1] is TransferKind.MODEL_UPLOAD and transfers[1][3] == len(b"seed+")
    assert ("finish", True) in recorder.events
    assert snap.transfers[TransferKind.MODEL_DOWNLOAD].nbytes == len(b"seed")
    assert snap.transfers[TransferKind.MODEL_UPLOAD].count == 1

    # Every JSON line parses; lines logged inside the task carry all four context keys.
    records = [json.loads(line) for line in root_logging.getvalue().splitlines()]
    sent = [r for r in records if "model update" in r["message"]]
    assert sent, records
    for key, value in {"client_id": "cid-1", "session_id": "s1", "round_id": "1", "model_id": "seed"}.items():
        assert sent[0][key] == value
    assert {"time", "level", "logger", "message"} <= set(sent[0])
    assigned = [r for r in records if "assigned to combiner" in r["message"]]
    assert assigned and "session_id" not in assigned[0], "outside a task: no task keys"


async def test_a_failed_task_is_counted_as_failed(tmp_path: Path, archive: Path) -> None:
    from fedclient.testing.fakes import InMemoryTrainer

    board = StatusBoard(now=time.monotonic)
    w = World(tmp_path, archive, trainer=InMemoryTrainer(fail="train"), observer=board)
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: board.snapshot.failed() == 1)
    assert board.snapshot.tasks[("train", "failed")] == 1


def test_json_lines_are_redacted(root_logging: io.StringIO) -> None:
    configure_logging("INFO", ["s3cr3t-value-xyz"], log_format="json", stream=root_logging)
    logging.getLogger("fedclient.test").warning("token is %s", "s3cr3t-value-xyz")
    [line] = root_logging.getvalue().splitlines()
    assert json.loads(line)["message"] == "token is ***"


def test_text_lines_show_the_context(root_logging: io.StringIO) -> None:
    configure_logging("INFO", log_format="text", stream=root_logging)
    uuid = "6d597a15-f74f-4307-bb57-b2a2a457bca5"
    with log_scope(client_id=uuid, session_id="sess-1", round_id="3", model_id=None):
        assert log_context() == {"client_id": uuid, "session_id": "sess-1", "round_id": "3"}
        logging.getLogger("fedclient.tasks").info("hello")
    assert log_context() == {}
    [line] = root_logging.getvalue().splitlines()
    assert "fedclient.tasks [client=6d597a15 session=sess-1 round=3]: hello" in line


def test_health_needs_a_connection_and_a_recent_heartbeat() -> None:
    now = [100.0]
    board = StatusBoard(now=lambda: now[0])
    assert not board.healthy(30)
    board.link(Link.CONNECTED, "c:1")
    assert board.healthy(30)
    now[0] += 31
    assert not board.healthy(30), "connected but no heartbeat answer for 31 s: stuck"
    board.heartbeat(True)
    assert board.healthy(30)
    board.link(Link.DISCONNECTED, "c:1")
    assert not board.healthy(30)
    board.link(Link.CONNECTED, "c:1")
    assert board.snapshot.reconnects == 1


def test_transfer_totals_and_summary_text() -> None:
    now = [0.0]
    board = StatusBoard([Recorder()], now=lambda: now[0])
    transfer = board.transfer(TransferKind.MODEL_DOWNLOAD, "m", None)
    transfer.advance(512 * 1024 * 1024)
    now[0] = 1.4
    transfer.finish(True)
    totals = board.snapshot.transfers[TransferKind.MODEL_DOWNLOAD]
    assert (totals.count, totals.nbytes, totals.seconds) == (1, 512 * 1024 * 1024, 1.4)
    assert transfer_summary(TransferKind.MODEL_DOWNLOAD, totals.nbytes, 1.4) == (
        "downloaded 512 MiB in 1.4 s, 366 MiB/s"
    )
    assert transfer_summary(TransferKind.MODEL_UPLOAD, 5 * 1024, 0.0) == "uploaded 5.0 KiB in 0.0 s, -"
    assert human_bytes(3) == "3 B"
    line = status_line(board)
    assert line.startswith("disconnected | IDLE | no session | no heartbeat yet | tasks 0 done, 0 failed")


async def test_link_stays_up_for_the_shutdown_hooks_then_goes_down(tmp_path: Path, archive: Path) -> None:
    recorder = Recorder()
    w = World(tmp_path, archive, observer=recorder)
    seen_by_hook: list[object] = []

    async def hook() -> None:
        links = [e for e in recorder.events if e[0] == "link"]
        seen_by_hook.append(links[-1][1])

    w.life.shutdown_hooks.append(hook)
    await w.run_until(lambda: bool(w.combiner.heartbeats))
    assert seen_by_hook == [Link.CONNECTED], "the hooks run while the link is still open"
    links = [e[1] for e in recorder.events if e[0] == "link"]
    assert links == [Link.CONNECTING, Link.CONNECTED, Link.DISCONNECTED], "one DISCONNECTED, at the end"


async def test_heartbeat_misses_past_the_limit_show_as_a_reconnect(tmp_path: Path, archive: Path) -> None:
    board = StatusBoard(now=time.monotonic)
    w = World(tmp_path, archive, heartbeat_miss_limit=2, observer=board)
    w.combiner.fail_next["heartbeat"] = 2
    await w.run_until(lambda: board.snapshot.connects >= 2 and board.snapshot.connected)
    assert board.snapshot.heartbeats_missed == 2
    assert board.snapshot.reconnects == 1


async def test_a_reassignment_shows_the_new_combiner(tmp_path: Path, archive: Path) -> None:
    from fedclient.domain.model import Assignment, AssignmentStatus, CombinerAddress

    from tests.unit.world import ASSIGNED

    moved = Assignment(
        AssignmentStatus.ASSIGNED, combiner=CombinerAddress("127.0.0.2", 12081), client_id="cid-1"
    )
    recorder = Recorder()
    board = StatusBoard([recorder], now=time.monotonic)
    w = World(tmp_path, archive, ASSIGNED, moved, reassign_after=2, observer=board)
    w.combiner.refuse_connects = 2
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: board.snapshot.done() == 1)
    connected = [e[2] for e in recorder.events if e[:2] == ("link", Link.CONNECTED)]
    assert connected == ["127.0.0.2:12081"]
    assert board.snapshot.combiner == "127.0.0.2:12081"
    refused = [e for e in recorder.events if e[:2] == ("link", Link.DISCONNECTED)]
    assert [e[2] for e in refused[:2]] == ["127.0.0.1:12080"] * 2, "each refused connect is reported"


def test_a_task_of_a_kind_without_a_client_state_leaves_the_state_and_is_counted() -> None:
    import dataclasses

    board = StatusBoard(now=time.monotonic)
    task = dataclasses.replace(train_task(), kind=TaskKind.UNSUPPORTED)
    board.task_started(task)
    assert board.snapshot.state is ClientState.IDLE
    board.task_finished(task, False)
    assert board.snapshot.tasks[(TaskKind.UNSUPPORTED.value, "failed")] == 1
