"""Operating-system plumbing for the interop harness: loopback ports and process groups.

Every process the harness starts gets a process group of its own; stopping it signals
exactly that group (TERM, wait, KILL) and never looks anything up by name. The group
leader is not reaped until after the final KILL, so its pid (= the group id) cannot
be reused by an unrelated process while we still signal it.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"


@dataclass
class Proc:
    """One process we started, in its own process group, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]


def free_port() -> int:
    """A free port BELOW the kernel's ephemeral range.

    A port from ``bind(0)`` comes from the ephemeral range, where any outgoing
    connection (our own health polls included) may take it as its source port in the
    seconds before the server binds it. Ports below that range are never handed out
    that way, so only a real listener can collide, and the test bind rules that out.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1025, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port below {low} on {HOST}")


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def port_is_free(port: int) -> bool:
    """True when nothing listens on HOST:port.

    SO_REUSEADDR lets the probe bind over connections left in TIME_WAIT; a listener
    still refuses it (also gRPC's, which sets SO_REUSEPORT, since the probe does not).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def _exited(pid: int) -> bool:
    """True once ``pid`` has exited, WITHOUT reaping it (the zombie keeps its pid reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


def peek_exit(popen: subprocess.Popen[bytes]) -> int | None:
    """The exit code if the process has ended, else None; unlike ``poll()`` it does not reap."""
    if popen.returncode is not None:
        return popen.returncode
    try:
        info = os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return popen.poll()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def stop_group(popen: subprocess.Popen[bytes], grace: float = 10.0) -> int:
    """TERM the process group we created for ``popen``, wait, KILL what is left; return the exit code."""
    if popen.returncode is None:
        pgid = popen.pid  # start_new_session=True: the group id is the leader's pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while not _exited(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _exited(pgid):
            print(
                f"[interop] pid {pgid} ignored SIGTERM for {grace:.0f} s; killing its group", file=sys.stderr
            )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)  # the leader, or children it left behind in the group
    return popen.wait(timeout=30)


def spawn(name: str, cmd: list[str], log: Path, cwd: Path, env: dict[str, str]) -> Proc:
    handle = open(log, "ab")  # noqa: SIM115 - closed by the owner when the process is stopped
    popen = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a process group of our own: stop_group signals exactly it
    )
    return Proc(name, popen, log, handle)
