"""``python tied_exec.py <parent pid> [--rlimit NAME=SOFT,HARD]... -- <argv...>``: tie, limit, exec.

Runs as the entry point's own process, before it becomes the entry point: it asks the
kernel to SIGKILL it when its parent (the client) dies - ``prctl(PR_SET_PDEATHSIG)``
through ctypes, which survives ``exec`` - checks the parent did not die first, applies
any resource limits, then ``exec``s the real command in place (same pid, same process
group). Standard library only, run with ``-I -S``, so it starts fast and imports nothing
of ours.

Why not a ``preexec_fn``: Python code between fork and exec runs the interpreter's
after-fork hooks in the child, and gRPC's own hooks crash there (SIGSEGV) once a channel
is open - which it always is in the client.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
EXIT_CANNOT_RUN = 127


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
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not rest:
        print("tied_exec: no command given", file=sys.stderr)
        return EXIT_CANNOT_RUN
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the client died before the signal was armed
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
