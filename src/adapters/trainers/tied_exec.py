"""``python tied_exec.py <parent pid> [--rlimit NAME=SOFT,HARD]... [--read-only DIR] -- <argv...>``.

Tie, limit, exec.

Runs as the entry point's own process, before it becomes the entry point: it asks the
kernel to SIGKILL it when its parent (the client) dies - ``prctl(PR_SET_PDEATHSIG)``
through ctypes, which survives ``exec`` - checks the parent did not die first, applies
any resource limits, then ``exec``s the real command in place (same pid, same process
group). With ``--read-only DIR`` (Linux) it first gives itself a private mount
namespace in which DIR is a read-only bind mount of itself, so not even root can write
there; without the privilege for that (EPERM: not root, no CAP_SYS_ADMIN) it goes on,
and the directory's file modes are the protection. Standard library only, run with
``-I -S``, so it starts fast and imports nothing of ours.

Why not a ``preexec_fn``: Python code between fork and exec runs the interpreter's
after-fork hooks in the child, and gRPC's own hooks crash there (SIGSEGV) once a channel
is open - which it always is in the client.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
EXIT_CANNOT_RUN = 127
# <sched.h>, <sys/mount.h>
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


class CannotIsolate(Exception):
    """A mount step failed for a reason other than lacking the privilege to try."""


def _read_only_view(directory: str) -> bool:
    """Make ``directory`` read-only for this process and its children; False if not permitted."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        if err == errno.EPERM:
            return False
        raise CannotIsolate(f"unshare(CLONE_NEWNS): {os.strerror(err)}")
    path = os.fsencode(directory)
    steps = (
        ("make mounts private", None, b"/", MS_REC | MS_PRIVATE),
        ("bind-mount", path, path, MS_BIND | MS_REC),
        ("remount read-only", None, path, MS_BIND | MS_REMOUNT | MS_RDONLY),
    )
    for what, source, target, flags in steps:
        if libc.mount(source, target, None, ctypes.c_ulong(flags), None) != 0:
            raise CannotIsolate(f"{what} {directory}: {os.strerror(ctypes.get_errno())}")
    # The working directory (the package dir, set before this ran) still refers to the old,
    # writable mount, and so would every relative path: look it up again, through the new one.
    os.chdir(os.getcwd())
    return True


def _limit(spec: str) -> None:
    import resource

    name, _, values = spec.partition("=")
    soft, _, hard = values.partition(",")
    resource.setrlimit(getattr(resource, name), (int(soft), int(hard or soft)))


def main(args: list[str]) -> int:
    parent = int(args[0])
    rest = args[1:]
    limits: list[str] = []
    while rest and rest[0] == "--rlimit":
        limits.append(rest[1])
        rest = rest[2:]
    read_only = None
    if len(rest) >= 2 and rest[0] == "--read-only":
        read_only, rest = rest[1], rest[2:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not rest:
        print("tied_exec: no command given", file=sys.stderr)
        return EXIT_CANNOT_RUN
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the client died before the signal was armed
        return EXIT_CANNOT_RUN
    if read_only is not None and sys.platform.startswith("linux"):
        try:
            _read_only_view(read_only)
        except (CannotIsolate, OSError) as exc:
            print(f"tied_exec: cannot make the package directory read-only: {exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN
    try:
        for spec in limits:
            _limit(spec)
        os.execvp(rest[0], rest)  # noqa: S606 - an argv list, never a shell
    except (OSError, ValueError, AttributeError) as exc:
        print(f"cannot run {rest[0]}: {exc}", file=sys.stderr)
    return EXIT_CANNOT_RUN


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
