"""The site policy's resource limits, applied to an entry point's child process.

Memory, CPU time and open files are set with ``setrlimit`` in the child between fork
and exec, by ``tied_exec`` (computed here, in the parent). Wall time and output volume
are enforced by the trainer, which watches the child. When a run fails, ``limit_hit``
says which limit most likely stopped it, so the task's error names the limit rather
than just an exit code.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass

from ...domain.policy import ResourceLimits

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

_MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
_FILES_SIGNS = ("Too many open files", "EMFILE")


def _capped(kind: int, soft: int, hard: int | None = None) -> tuple[int, int, int]:
    """(kind, soft, hard) never above the current hard limit (raising it needs privileges)."""
    assert resource is not None
    _, current_hard = resource.getrlimit(kind)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    return kind, soft, hard


def rlimits_for(limits: ResourceLimits) -> dict[str, tuple[int, int]] | None:
    """The rlimits to set in the child, by ``resource`` name, or None when there are none.

    They are applied by ``tied_exec`` in the child after fork, before it execs the entry
    point: a Python ``preexec_fn`` is no option, gRPC's after-fork hooks crash there.
    """
    if resource is None:
        return None
    plan: dict[str, tuple[int, int]] = {}
    if limits.memory_bytes is not None:
        _, soft, hard = _capped(resource.RLIMIT_AS, limits.memory_bytes)
        plan["RLIMIT_AS"] = (soft, hard)
    if limits.cpu_seconds is not None:
        # The soft limit sends SIGXCPU, the hard one a second later SIGKILL (for code that ignores it).
        _, soft, hard = _capped(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1)
        plan["RLIMIT_CPU"] = (soft, hard)
    if limits.open_files is not None:
        _, soft, hard = _capped(resource.RLIMIT_NOFILE, limits.open_files)
        plan["RLIMIT_NOFILE"] = (soft, hard)
    return plan or None


@dataclass
class OutputBudget:
    """Counts what a child prints; ``exceeded`` once it passes the limit."""

    limit: int | None
    used: int = 0
    exceeded: bool = False

    def spend(self, nbytes: int) -> bool:
        """Add ``nbytes``; True the first time the budget is exceeded."""
        self.used += nbytes
        if self.limit is not None and self.used > self.limit and not self.exceeded:
            self.exceeded = True
            return True
        return False


def limit_hit(limits: ResourceLimits, code: int, tail: Iterable[str]) -> str | None:
    """Which limit a failed run most likely hit, as a phrase naming it, or None."""
    text = "\n".join(tail)
    # SIGXCPU at the soft limit; SIGKILL at the hard one (our own kills are reported before this).
    if limits.cpu_seconds is not None and code in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"the CPU time limit of {limits.cpu_seconds} s (limits.cpu_seconds)"
    if limits.memory_bytes is not None and (
        any(sign in text for sign in _MEMORY_SIGNS) or code in (-signal.SIGSEGV, -signal.SIGABRT)
    ):
        return f"the memory limit of {limits.memory_bytes} bytes (limits.memory)"
    if limits.open_files is not None and any(sign in text for sign in _FILES_SIGNS):
        return f"the open-files limit of {limits.open_files} (limits.open_files)"
    return None
