"""What operators see while `fedclient run` works: the status board and its displays.

Off a terminal (or with --progress off, or JSON logs) the client speaks in log
lines only; on one it draws progress bars and a live status line. With
--metrics-port it also serves Prometheus metrics and /healthz.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

from .. import __version__
from ..adapters.clock import SystemClock
from ..adapters.observers.terminal import TerminalDisplay
from ..adapters.observers.transfer_log import TransferLog
from ..domain.observe import Observer
from ..domain.status import StatusBoard
from .settings import Settings

log = logging.getLogger("fedclient")


def wants_terminal(settings: Settings, stream: TextIO) -> bool:
    if settings.progress == "off":
        return False
    if settings.progress == "on":
        return True
    return settings.log_format == "text" and stream.isatty()


def stale_after(settings: Settings) -> float:
    """How long without a heartbeat answer before /healthz calls the client stuck."""
    return max(30.0, 10 * settings.heartbeat_interval)


@contextlib.contextmanager
def operator_views(settings: Settings, stream: TextIO | None = None) -> Iterator[StatusBoard]:
    stream = stream or sys.stderr
    displays: list[Observer] = [TransferLog()]
    board = StatusBoard(displays, now=SystemClock().monotonic)
    with contextlib.ExitStack() as stack:
        if wants_terminal(settings, stream):
            display = TerminalDisplay(board, stream)
            board.displays.append(display)
            stack.enter_context(display)
        if settings.metrics_port is not None:
            from ..adapters.observers.prometheus import MetricsServer

            server = MetricsServer(
                board,
                settings.metrics_host,
                settings.metrics_port,
                stale_after(settings),
                {"name": settings.name or "", "client_id": settings.client_id or "", "version": __version__},
            ).start()
            stack.callback(server.stop)
            log.info("metrics on http://%s:%d/metrics, health on /healthz", server.host, server.port)
        yield board
