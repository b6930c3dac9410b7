"""Logging set-up: one line per event; secrets are scrubbed from every record by domain.redaction."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from ..domain.redaction import install_log_redaction, register_secrets
from ..domain.redaction import redact as scrub

__all__ = ["configure_logging", "register_secrets", "scrub"]


def configure_logging(level: str, secrets: Iterable[str | None] = ()) -> None:
    register_secrets(secrets)
    install_log_redaction()  # once, at the logging root: every record, every handler and formatter
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter stays out of the client's log unless asked for.
    for noisy in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
