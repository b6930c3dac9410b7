"""What the client tells its operators: a small observer port, and the log context of a task.

The lifecycle, the task runner and the transfer adapters report events here;
the app layer turns them into progress bars, a status line, log lines and
Prometheus metrics. Nothing in this module knows how they are shown.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Iterator
from typing import Protocol

from .model import Task
from .privacy import PrivacySpent


class TransferKind(enum.Enum):
    PACKAGE_DOWNLOAD = "package download"
    MODEL_DOWNLOAD = "model download"
    MODEL_UPLOAD = "model upload"

    @property
    def direction(self) -> str:
        return "sent" if self is TransferKind.MODEL_UPLOAD else "received"


class Link(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class Transfer(Protocol):
    """One transfer in flight: bytes moved so far, then how it ended."""

    def advance(self, nbytes: int) -> None: ...

    def finish(self, ok: bool) -> None: ...


class Observer(Protocol):
    def transfer(self, kind: TransferKind, name: str, total: int | None) -> Transfer: ...

    def link(self, state: Link, combiner: str | None) -> None: ...

    def heartbeat(self, ok: bool) -> None: ...

    def task_started(self, task: Task) -> None: ...

    def task_finished(self, task: Task, ok: bool) -> None: ...

    def privacy_spent(self, spent: PrivacySpent) -> None:
        """Where the site's privacy budget stands (at start, then after each released update)."""
        ...


class _NoTransfer:
    def advance(self, nbytes: int) -> None:
        return None

    def finish(self, ok: bool) -> None:
        return None


class NullObserver:
    """Reports go nowhere (the default, and what tests use when they do not look)."""

    def transfer(self, kind: TransferKind, name: str, total: int | None) -> Transfer:
        return _NoTransfer()

    def link(self, state: Link, combiner: str | None) -> None:
        return None

    def heartbeat(self, ok: bool) -> None:
        return None

    def task_started(self, task: Task) -> None:
        return None

    def task_finished(self, task: Task, ok: bool) -> None:
        return None

    def privacy_spent(self, spent: PrivacySpent) -> None:
        return None


NULL_OBSERVER = NullObserver()

# ------------------------------------------------------------ log context --

# The ids every log line inside a task carries (client_id, session_id, round_id, model_id).
LOG_CONTEXT: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("fedclient_log_context")


def log_context() -> dict[str, str]:
    return LOG_CONTEXT.get({})


@contextlib.contextmanager
def log_scope(**values: str | None) -> Iterator[None]:
    """Add ``values`` (empty ones left out) to the log context until the block ends."""
    merged = {**log_context(), **{k: v for k, v in values.items() if v}}
    token = LOG_CONTEXT.set(merged)
    try:
        yield
    finally:
        LOG_CONTEXT.reset(token)


def bind_log_context(**values: str | None) -> None:
    """Set ``values`` for the rest of the current asyncio task (and the tasks it starts)."""
    LOG_CONTEXT.set({**log_context(), **{k: v for k, v in values.items() if v}})
