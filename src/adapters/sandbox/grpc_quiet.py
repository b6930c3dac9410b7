"""Quiet grpc.aio's reports of servicer calls that the sandbox's own stop (or the client) cancelled.

When a call's handler task is cancelled, grpc.aio (server.pyx.pxi, ``_schedule_rpc_coro``)
both logs "Exception not handled by _handle_exceptions in servicer method" with the traceback
on the ``grpc._cython.cygrpc`` logger and prints the same traceback to stderr with
``traceback.print_exc()``. A stop mid-assignment or mid-round cancels calls that are in
flight: that is the planned end of the call, and a user must not see a traceback for it.
Both are silenced for ``CancelledError`` only; any other error is still logged and printed.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from typing import Any

_GRPC_SERVER_LOG = logging.getLogger("grpc._cython.cygrpc")
_CANCELLED = ("asyncio.exceptions.CancelledError", "CancelledError")


class CancelledHandler(logging.Filter):
    """Drops gRPC's log record of a servicer call ended by ``CancelledError``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            return not isinstance(record.exc_info[1], asyncio.CancelledError)
        # The app's redaction renders the traceback into exc_text when the record is made.
        last = (record.exc_text or "").rstrip().rsplit("\n", 1)[-1].strip()
        return last not in _CANCELLED


class QuietCancelledTraceback:
    """The ``traceback`` module as gRPC's server code sees it: ``print_exc`` is silent for a cancel."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def print_exc(self, *args: Any, **kwargs: Any) -> None:
        if isinstance(sys.exc_info()[1], asyncio.CancelledError):
            return
        self._real.print_exc(*args, **kwargs)


def quiet_cancelled_handlers() -> None:
    """Install both (once): on gRPC's server logger, and as the ``traceback`` gRPC's server code uses."""
    if not any(isinstance(f, CancelledHandler) for f in _GRPC_SERVER_LOG.filters):
        _GRPC_SERVER_LOG.addFilter(CancelledHandler())
    cygrpc = sys.modules.get("grpc._cython.cygrpc")
    if cygrpc is not None and getattr(cygrpc, "traceback", None) is traceback:
        cygrpc.traceback = QuietCancelledTraceback(traceback)
