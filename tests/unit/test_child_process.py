"""Entry-point children never outlive the client: parent-death signal, and the pid-file sweep."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fedclient.adapters.trainers.child_process import ChildRegistry, spawn_child

from tests.child import Child

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process semantics")

# A stand-in for the client: it starts one entry point (which starts a grandchild) and waits.
FAKE_CLIENT = """
import asyncio, os, sys
from pathlib import Path
import grpc.aio
from fedclient.adapters.trainers.child_process import ChildRegistry, spawn_child, spawn_child

ENTRY = (
    "import subprocess, sys, time\\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\\n"
    "print(p.pid, flush=True)\\n"
    "time.sleep(120)\\n"
)

async def main():
    # As in the real client: a gRPC channel is open (its after-fork hooks broke preexec_fn).
    channel = grpc.aio.insecure_channel("127.0.0.1:9")
    channel.get_state(try_to_connect=True)
    await asyncio.sleep(0.2)
    registry = ChildRegistry(Path(sys.argv[1]))
    proc = await spawn_child([sys.executable, "-c", ENTRY], Path("."), dict(os.environ), registry)
    grandchild = int(await proc.stdout.readline())
    print(proc.pid, grandchild, flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


def test_a_killed_client_takes_its_entry_point_with_it_and_the_sweep_gets_the_rest(tmp_path: Path) -> None:
    pid_file = tmp_path / "children.json"
    client = subprocess.Popen(
        [sys.executable, "-c", FAKE_CLIENT, str(pid_file)], stdout=subprocess.PIPE, text=True
    )
    child = grandchild = 0
    try:
        assert client.stdout is not None
        child, grandchild = map(int, client.stdout.readline().split())
        assert [e["pgid"] for e in json.loads(pid_file.read_text())] == [child]
        client.send_signal(signal.SIGKILL)  # no cleanup at all
        client.wait(10)

        assert wait_dead(child), "the parent-death signal killed the entry point"
        assert alive(grandchild), "its own child had no such signal (this is what the sweep is for)"

        killed = ChildRegistry(pid_file).sweep()  # the next start
        assert killed == [child]
        assert wait_dead(grandchild)
        assert json.loads(pid_file.read_text()) == []
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
        if grandchild and alive(grandchild):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)  # the group our test started


def test_the_sweep_never_signals_a_process_that_is_not_ours(tmp_path: Path) -> None:
    """A recorded group whose pid now belongs to another process (other start time) is left alone."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        registry = ChildRegistry(tmp_path / "children.json")
        registry.record(other.pid)
        entries = json.loads(registry.path.read_text())
        real = dict(entries[0])
        entries[0]["start"] -= 1  # "our" child started at another time: pid reused
        entries.append({**real, "pgid": 1})  # never init
        entries.append({**real, "boot": "another-boot"})  # recorded before a reboot
        entries.append({**real, "uid": os.getuid() + 1})  # another user's
        registry.path.write_text(json.dumps(entries))

        assert ChildRegistry(registry.path).sweep() == []
        assert other.poll() is None and alive(other.pid)
    finally:
        other.kill()
        other.wait(10)


def test_a_child_that_ends_normally_is_forgotten(tmp_path: Path) -> None:
    registry = ChildRegistry(tmp_path / "children.json")
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    registry.record(proc.pid)
    assert registry.recorded() == [proc.pid]
    proc.wait(10)
    registry.forget(proc.pid)
    assert registry.recorded() == [] and json.loads(registry.path.read_text()) == []


async def test_limits_are_applied_before_exec_and_a_missing_command_fails_early(tmp_path: Path) -> None:
    script = "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE))"
    proc = Child(
        await spawn_child(
            [sys.executable, "-c", script], tmp_path, dict(os.environ), rlimits={"RLIMIT_NOFILE": (64, 64)}
        ),
        "rlimit probe",
    )
    await proc.wait(30)
    assert proc.stdout.strip() == "(64, 64)"
    with pytest.raises(FileNotFoundError):
        await spawn_child(["no-such-command-xyz"], tmp_path, {"PATH": "/nonexistent"})


def test_an_unreadable_pid_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "children.json"
    path.write_text("{not json")
    assert ChildRegistry(path).sweep() == []
    assert ChildRegistry(tmp_path / "missing.json").sweep() == []
