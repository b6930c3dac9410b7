"""Plain log lines for transfers: one summary per package or model.

For example ``model download 1a2b3c4d: downloaded 512 MiB in 1.4 s, 366 MiB/s``.
"""

from __future__ import annotations

import logging
import time

from ...domain.observe import NullObserver, Transfer, TransferKind
from ...domain.status import human_bytes, transfer_summary

log = logging.getLogger("fedclient.transfer")


class _Timed:
    def __init__(self, kind: TransferKind, name: str) -> None:
        self._kind, self._name = kind, name
        self._started = time.monotonic()
        self._bytes = 0

    def advance(self, nbytes: int) -> None:
        self._bytes += nbytes

    def finish(self, ok: bool) -> None:
        seconds = time.monotonic() - self._started
        if ok:
            log.info(
                "%s %s: %s", self._kind.value, self._name, transfer_summary(self._kind, self._bytes, seconds)
            )
        else:
            log.info("%s %s stopped after %s", self._kind.value, self._name, human_bytes(self._bytes))


class TransferLog(NullObserver):  # only transfers are shown here; the rest is a no-op
    """An Observer that only speaks about transfers (the lifecycle logs the rest itself)."""

    def transfer(self, kind: TransferKind, name: str, total: int | None) -> Transfer:
        return _Timed(kind, name)
