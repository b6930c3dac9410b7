"""The one secrets redactor: every secret of this process is replaced by ``***`` wherever text leaves it.

Secrets (the token, the refresh token, any token obtained later) are registered here
once, by whoever learns them. ``redact`` scrubs a string: registered values, plus
anything shaped like a credential (an ``Authorization`` header, ``token=...``,
``"refresh_token": "..."``) so that a secret nobody registered still does not leak.

``scrub_record`` is what is masked in a log record: the message with its arguments,
the exception text and traceback (rendered once into ``exc_text``; ``exc_info`` is
then cleared so no formatter can render the raw exception again), and ``stack_info``.
Putting it at the logging root, as the record factory, so every record any logger
creates is scrubbed before any handler or formatter sees it, is logging configuration:
``app.logs.install_log_redaction`` does that.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable

MASK = "***"
# Shorter values would scrub ordinary words out of every log line; real tokens are long.
MIN_SECRET_CHARS = 6

_lock = threading.Lock()
_secrets: list[str] = []

# Credential-shaped text, for secrets that were never registered (a server echoing one back).
_PATTERNS = (
    # Authorization: Bearer abc / authorization=Token abc / ("authorization", "Bearer abc")
    re.compile(r"""(?i)(authorization['"]?\s*[:=,]\s*['"]?\s*(?:bearer|token|basic)?\s*)([^\s'",;)]+)"""),
    # token=abc, "refresh_token": "abc", 'access_token': 'abc', FEDN_AUTH_TOKEN=abc
    re.compile(r"""(?i)((?:refresh|access|auth|id)?_?token(?:=|['"]\s*:\s*['"]?))([^\s'",;&)}]{6,})"""),
)


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from everything from now on (ignored when empty or too short to be a secret)."""
    if not value or len(value) < MIN_SECRET_CHARS:
        return
    with _lock:
        if value not in _secrets:
            _secrets.append(value)
            _secrets.sort(key=len, reverse=True)  # a longer secret containing a shorter one goes first


def forget_secret(value: str) -> None:
    """Stop scrubbing ``value`` (a token that was replaced, or a test's throw-away secret)."""
    with _lock:
        if value in _secrets:
            _secrets.remove(value)


def register_secrets(values: Iterable[str | None]) -> None:
    for value in values:
        register_secret(value)


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped value replaced by ``***``."""
    if not text:
        return text
    with _lock:
        secrets = tuple(_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK if m.group(2) != MASK else m.group(0), text)
    return text


def mask(value: object) -> str:
    """How a secret setting is shown (``config show``): whether it is set, never what it is."""
    if value is None or value == "":
        return "(not set)"
    return f"{MASK} (set)"


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` with its message, arguments, exception text and stack info redacted (in place)."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what there is rather than lose the record
        message = f"{record.msg} {record.args!r}"
    record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[0] is not None:
        rendered = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redact(rendered)
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record
