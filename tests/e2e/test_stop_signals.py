"""SIGINT / SIGTERM on `fedclient run` as an operator sends them: what the client says, and how it ends.

The first signal logs one line naming what it waits for; a second ends the process at
once; an idle client stops without waiting; and a stderr that nobody reads never stalls
the client (its log lines leave on a thread of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.combiner import ONLINE_WINDOW
from fedclient.adapters.sandbox.federation import Federation
from fedclient.domain.model import TaskKind

from tests.child import Child
from tests.e2e.conftest import fedclient_exe
from tests.e2e.test_recovery import slow_package


@pytest.fixture
async def slow_federation(tmp_path: Path, digits: Path) -> AsyncIterator[Federation]:
    fed = Federation(slow_package(digits, tmp_path / "slow"), tmp_path / "server", expected_clients=1)
    await fed.start()
    try:
        yield fed
    finally:
        await fed.stop()


def _run_args(fed: Federation, tmp_path: Path, client_id: str) -> list[str]:
    work = str(tmp_path / "client")
    return [fedclient_exe(), "run", "--api-url", fed.api_url, "--client-id", client_id, "--work-dir", work]


async def _until(condition: object, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"condition not met in {timeout:.0f} s\n{child.tail()}"
        assert child.returncode is None, f"the client exited early\n{child.tail()}"
        await asyncio.sleep(0.05)


async def _train(fed: Federation, client_id: str) -> str:
    assert fed.combiner is not None
    config = json.dumps({"round_id": "1", "session_id": fed.session_id})
    return fed.combiner.submit_task(client_id, TaskKind.TRAIN, fed.seed_model_id, fed.session_id, config)


async def test_the_first_sigint_says_what_it_waits_for_and_a_second_ends_at_once(
    tmp_path: Path, slow_federation: Federation
) -> None:
    fed = slow_federation
    env = {**os.environ, "SLOW_TRAIN_SECONDS": "300"}
    child = await Child.start(*_run_args(fed, tmp_path, "twice"), cwd=tmp_path, env=env)
    try:
        await fed.wait_for_clients(timeout=60)
        await _train(fed, "twice")
        await _until(lambda: "running train" in child.stderr, 60, child)
        child.proc.send_signal(signal.SIGINT)
        expected = (
            "stopping on SIGINT: waiting for the running train task, up to 120 s; Ctrl-C again to stop now"
        )
        await _until(lambda: expected in child.stderr, 30, child)
        code = await child.stop(
            signal.SIGINT, 15
        )  # the entry point sleeps 300 s: only an exit at once is quick
    finally:
        await child.kill()
    assert code == 128 + signal.SIGINT, child.tail()
    assert "SIGINT again: stopping now" in child.stderr
    assert child.stderr.count("stopping on SIGINT") == 1
    assert "Traceback" not in child.stderr


async def test_an_idle_client_stops_on_sigterm_without_waiting(
    tmp_path: Path, slow_federation: Federation
) -> None:
    fed = slow_federation
    child = await Child.start(*_run_args(fed, tmp_path, "idle"), cwd=tmp_path)
    try:
        await fed.wait_for_clients(timeout=60)
        await _until(lambda: "connected" in child.stderr or "combiner" in child.stderr, 30, child)
        signalled = time.monotonic()
        code = await child.stop(signal.SIGTERM, 30)
        took = time.monotonic() - signalled
    finally:
        await child.kill()
    assert code == 0, child.tail()
    assert "stopping on SIGTERM: no task is running; a second SIGTERM to stop now" in child.stderr
    assert "fedclient stopped" in child.stderr
    print(f"idle client: exited {took:.2f} s after SIGTERM")


LOUD_TRAIN = """
import sys, time
for i in range(30000):
    print(f"line {i:05d} " + "x" * 90)
time.sleep(7)  # heartbeats are due meanwhile (every 2 s), with the client's stderr full
import train
train.train(sys.argv[1], sys.argv[2])
"""


def _loud_package(digits: Path, dest: Path) -> Path:
    shutil.copytree(digits, dest, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    (dest / "loud_train.py").write_text(LOUD_TRAIN)
    manifest = (dest / "fedn.yaml").read_text().replace("python train.py", "python loud_train.py")
    (dest / "fedn.yaml").write_text(manifest)
    return dest


DROPPED = b"log line(s) dropped: stderr was not being read"


async def test_a_stderr_nobody_reads_never_stalls_the_client(tmp_path: Path, digits: Path) -> None:
    """3 MB of entry-point output, each line logged, into a 64 KiB pipe nobody reads: the round still ends."""
    fed = Federation(_loud_package(digits, tmp_path / "loud"), tmp_path / "server", expected_clients=1)
    await fed.start()
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        *_run_args(fed, tmp_path, "unread"),
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=write_end,
    )
    os.close(write_end)
    log = bytearray()
    try:
        combiner = fed.combiner
        assert combiner is not None
        await fed.wait_for_clients(timeout=60)
        ask = await _train(fed, "unread")
        # The pipe is full long before the entry point is done printing; nobody reads it yet.
        [update] = await combiner.wait_for_updates([ask], 90)
        assert update.sender_client_id == "unread"
        beats = [at for who, at in combiner.heartbeat_log if who == "unread"]
        reader = asyncio.create_task(asyncio.to_thread(_read_all, read_end, log))
        deadline = time.monotonic() + 30
        while DROPPED not in log and time.monotonic() < deadline:  # the backlog, then the count
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(reader, 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(OSError):
            os.close(read_end)
        await fed.stop()
    text = log.decode(errors="replace")
    assert code == 0, text[-3000:]
    assert DROPPED.decode() in text
    assert "stopping on SIGTERM" in text
    gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
    assert len(beats) >= 3 and max(gaps) < ONLINE_WINDOW, f"heartbeats stalled: gaps {gaps}"


def _read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 1 << 16):
        into.extend(chunk)


if sys.platform != "linux":  # pragma: no cover - the client's signal handling is POSIX
    pytestmark = pytest.mark.skip("POSIX signals")
