"""Entry-point children that never outlive the client.

Each entry point runs in a process group (and session) of its own, so a timeout or a
cancel kills its grandchildren too (``kill_group``). Two things keep a child from
surviving a client that dies without cleaning up (SIGKILL, OOM killer, a crash):

* on Linux the child asks the kernel for SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG)`` via ctypes), and checks right after that the parent is
  still the one that started it, closing the race with an early death. This runs in
  ``tied_exec.py``, a tiny stdlib-only step that then ``exec``s the real command in the
  same process - not in a ``preexec_fn``: Python code between fork and exec runs the
  interpreter's after-fork hooks in the child, and gRPC's hooks crash there (SIGSEGV,
  seen against a real FEDn combiner) once a channel is open;
* every child's process group is written to a pid file, and the next client start
  sweeps it (``ChildRegistry.sweep``): it kills a recorded group only after checking it
  is still ours - same boot, same user, the session leader we started (by its start
  time) or, if the leader is gone, members of the very session it created. A pid the
  system has reused for someone else is never signalled.

``spawn_child`` takes resource limits (``rlimits``, by ``resource.RLIMIT_*`` name) that
the same step applies just before ``exec``, and optionally a directory (``read_only``) the
child sees as a read-only mount - the package directory under the read_only_package policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("fedclient.trainer")

_PROC = Path("/proc")
_TIED_EXEC = Path(__file__).with_name("tied_exec.py")
REAP_SECONDS = 10.0  # a SIGKILLed group leader is reaped well within this


def tied_argv(
    argv: Sequence[str],
    parent_pid: int,
    rlimits: Mapping[str, tuple[int, int]] | None = None,
    read_only: Path | None = None,
) -> list[str]:
    """``argv`` run through ``tied_exec.py`` (parent-death signal, limits, then exec in place).

    ``read_only``: a directory the child sees as a read-only mount (when it may mount).
    """
    limits = [
        arg for name, (soft, hard) in (rlimits or {}).items() for arg in ("--rlimit", f"{name}={soft},{hard}")
    ]
    view = ["--read-only", os.path.abspath(read_only)] if read_only is not None else []
    return [sys.executable, "-I", "-S", str(_TIED_EXEC), str(parent_pid), *limits, *view, "--", *argv]


async def spawn_child(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    registry: ChildRegistry | None = None,
    rlimits: Mapping[str, tuple[int, int]] | None = None,
    read_only: Path | None = None,
) -> asyncio.subprocess.Process:
    """Start ``argv`` (no shell) in its own session with piped output; record it in ``registry``.

    ``read_only`` (Linux): a directory mounted read-only in the child's own mount namespace.

    Raises FileNotFoundError when the command cannot be found on the child's PATH,
    before anything is started.
    """
    command = argv[0]
    if os.sep not in command:
        found = shutil.which(command, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(2, "command not found on PATH", command)
    elif not os.access(os.path.join(cwd, command), os.X_OK):
        raise FileNotFoundError(2, "no such executable", command)
    full = (
        tied_argv(argv, os.getpid(), rlimits, read_only) if sys.platform.startswith("linux") else list(argv)
    )
    proc = await asyncio.create_subprocess_exec(
        *full,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, so a kill reaches grandchildren
    )
    if registry is not None:
        registry.record(proc.pid)
    return proc


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (our child, not yet reaped, so the id is still ours)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows has no process groups
            os.kill(pid, signal.SIGKILL)


async def reap(proc: asyncio.subprocess.Process, registry: ChildRegistry | None = None) -> int | None:
    """Wait (bounded) for a killed child; forget it in the registry once it is gone."""
    try:
        code = await asyncio.wait_for(proc.wait(), REAP_SECONDS)
    except TimeoutError:
        log.warning("child %s was not reaped within %.0f s", proc.pid, REAP_SECONDS)
        return None
    if registry is not None:
        registry.forget(proc.pid)
    return code


# ------------------------------------------------------------------ pid file --


@dataclass(frozen=True)
class _Stat:
    pid: int
    pgrp: int
    session: int
    start: int  # clock ticks since boot
    uid: int


def _stat(pid: int) -> _Stat | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
        uid = (_PROC / str(pid)).stat().st_uid
    except (OSError, ValueError):
        return None
    # The command name is in parentheses and may contain spaces: split after its last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return _Stat(pid, int(fields[2]), int(fields[3]), int(fields[19]), uid)
    except (IndexError, ValueError):
        return None


def _boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class ChildRegistry:
    """The pid file of our entry-point children's process groups (JSON, rewritten atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[int, dict[str, object]] = {}
        self.killed: list[int] = []  # groups a sweep killed (for logs and tests)

    def _write(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(list(self._entries.values())))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write the child pid file %s: %s", self.path, exc)

    def record(self, pid: int) -> None:
        stat = _stat(pid)
        if stat is None:  # already gone
            return
        self._entries[pid] = {"pgid": pid, "start": stat.start, "uid": stat.uid, "boot": _boot_id()}
        self._write()

    def forget(self, pid: int) -> None:
        if self._entries.pop(pid, None) is not None:
            self._write()

    def recorded(self) -> list[int]:
        return sorted(self._entries)

    def sweep(self) -> list[int]:
        """Kill the leftover groups a previous run recorded, if they are still ours; empty the file."""
        try:
            entries = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable child pid file %s: %s", self.path, exc)
            entries = []
        killed: list[int] = []
        for entry in entries if isinstance(entries, list) else []:
            try:
                pgid, start, uid = int(entry["pgid"]), int(entry["start"]), int(entry["uid"])
                boot = entry["boot"]
            except (KeyError, TypeError, ValueError):
                continue
            if boot != _boot_id() or uid != os.getuid() or pgid <= 1:
                continue
            if _still_ours(pgid, start, uid):
                log.warning("killing process group %d left behind by an earlier fedclient run", pgid)
                kill_group(pgid)
                killed.append(pgid)
        self.killed.extend(killed)
        self._entries = {}
        self._write()
        return killed


def _still_ours(pgid: int, start: int, uid: int) -> bool:
    leader = _stat(pgid)
    if leader is not None:
        # The same process we started: the leader of its own session, started when we recorded it.
        return leader.start == start and leader.session == pgid and leader.pgrp == pgid and leader.uid == uid
    # The leader is gone; what is left of its session still carries its id as session and group.
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if (
            stat is not None
            and (stat.session, stat.pgrp, stat.uid) == (pgid, pgid, uid)
            and stat.start >= start
        ):
            return True
    return False
