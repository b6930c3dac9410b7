"""Logging set-up: one line per event (text or JSON), task context on each, secrets scrubbed.

Composable on purpose: one handler on the root, with filters (the secrets
redactor, the context stamper) and a formatter chosen by --log-format; the
JSON formatter formats the record after the filters ran, so it never sees a
secret the redactor removed.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from ..domain.observe import log_context
from ..domain.redaction import redact as scrub
from ..domain.redaction import register_secrets, scrub_record
from .stderr_writer import background_stderr

__all__ = ["configure_logging", "install_log_redaction", "register_secrets", "scrub"]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The keys of the task log context, in the order text lines show them.
CONTEXT_KEYS = ("client_id", "session_id", "round_id", "model_id")
_SHORT = {"client_id": "client", "session_id": "session", "round_id": "round", "model_id": "model"}


_install_lock = threading.Lock()
_installed = False


def install_log_redaction() -> None:
    """Make every log record pass through ``domain.redaction.scrub_record`` (once per process).

    It goes in as the logging record factory, at the root, so every record any logger
    creates is scrubbed before any handler or formatter (plain text, JSON, pytest's
    capture) sees it.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        inner = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        return scrub_record(inner(*args, **kwargs))

    logging.setLogRecordFactory(factory)


class StampContext(logging.Filter):
    """Copies the task's log context (contextvars) onto the record as ``record.context``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "context"):
            record.context = dict(log_context())
        return True


class TextFormatter(logging.Formatter):
    """``12:00:01 INFO    fedclient.tasks [client=… session=… round=3 model=…]: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(where)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        context: dict[str, str] = getattr(record, "context", {})
        parts = [f"{_SHORT[k]}={_short_id(context[k])}" for k in CONTEXT_KEYS if context.get(k)]
        record.where = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context keys, and exc if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "context", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, ensure_ascii=False))


def _short_id(value: str) -> str:
    """UUIDs are cut to their first 8 hex digits (enough to grep); other ids stay whole."""
    return value[:8] if _UUID.fullmatch(value) else value


class _CurrentStderr:
    """Writes to whatever sys.stderr is now (rich's live display swaps it to print above the bars).

    The process's own stderr, when it is not a terminal (a pipe, a file, the journal), is
    written from a thread of its own (``app.stderr_writer``): a reader that stalls never
    blocks the thread that logged, the event loop included.
    """

    def write(self, text: str) -> int:
        stream = sys.stderr
        if stream is not None and stream is sys.__stderr__ and not _is_terminal(stream):
            return background_stderr().write(text)
        return stream.write(text)

    def flush(self) -> None:
        if sys.stderr is not sys.__stderr__:
            sys.stderr.flush()


@functools.cache
def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def configure_logging(
    level: str,
    secrets: Iterable[str | None] = (),
    log_format: str = "text",
    stream: TextIO | None = None,
) -> None:
    register_secrets(secrets)
    handler = logging.StreamHandler(stream or _CurrentStderr())  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    install_log_redaction()  # once, at the logging root: every record, every handler and formatter
    handler.addFilter(StampContext())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter stays out of the client's log unless asked for.
    for noisy in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
