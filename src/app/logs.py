"""Logging set-up: one line per event, and secrets scrubbed from every record."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

# Secrets of this process (the token), scrubbed from every log record and error line.
_SECRETS: list[str] = []


def register_secrets(secrets: Iterable[str | None]) -> None:
    # Very short values would mangle ordinary words; real tokens are long.
    _SECRETS.extend(s for s in secrets if s and len(s) >= 4 and s not in _SECRETS)


def scrub(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


class RedactSecrets(logging.Filter):
    """Replaces any registered secret that slips into a log record with ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            scrubbed = scrub(message)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
        return True


def configure_logging(level: str, secrets: Iterable[str | None] = ()) -> None:
    register_secrets(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter stays out of the client's log unless asked for.
    for noisy in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
