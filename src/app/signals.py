"""SIGINT and SIGTERM for a client that owns its process: the first stops it gracefully, a second at once.

Used by ``fedclient run``, ``Client.run()`` and ``InProcessClient.run()``, so Ctrl-C
means the same everywhere. The handlers are the event loop's own
(``loop.add_signal_handler``), installed whatever the process inherited: a client
started with SIGINT ignored (a background job of a non-interactive shell, some CI
runners and supervisors) still stops on it. The first signal logs one line saying
what the client waits for (the running task and its grace period) and sets the stop
event; a second ends the process at once with 128 + the signal's number. Nothing is
lost that way: finished results are in the outbox on disk, and entry points die with
the client (docs/RELIABILITY.md, "Graceful shutdown").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .stderr_writer import flush_background_stderr

log = logging.getLogger("fedclient")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _again(sig: int) -> str:
    return "Ctrl-C again" if sig == signal.SIGINT else "a second SIGTERM"


@contextlib.contextmanager
def stop_on_signals(
    stop: asyncio.Event,
    outlook: Callable[[], str],
    before_exit: Callable[[], None] | None = None,
    level: int = logging.INFO,
) -> Iterator[bool]:
    """Inside a running loop: SIGINT/SIGTERM set ``stop``, a second ends the process; True if installed.

    ``outlook()`` says what stopping waits for ("waiting for the running train task, up to
    120 s"). ``before_exit`` runs just before a second signal ends the process (e.g. remove
    a temporary work dir). ``level``: of the stop line (simulate logs WARNING and up by
    default, and the line must show). Off the main thread nothing is installed (Python allows it only
    there) and the caller stops the client its own way.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        name = signal.Signals(sig).name
        if len(received) == 1:
            log.log(level, "stopping on %s: %s; %s to stop now", name, outlook(), _again(sig))
            stop.set()
            return
        log.warning("%s again: stopping now", name)
        if before_exit is not None:
            with contextlib.suppress(Exception):
                before_exit()
        flush_background_stderr(1.0)
        os._exit(128 + sig)

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield True
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
            if previous[sig] is not None:
                signal.signal(sig, previous[sig])
