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
from dataclasses import dataclass, field
from typing import Any

from .stderr_writer import flush_background_stderr

log = logging.getLogger("fedclient")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _again(sig: int) -> str:
    return "Ctrl-C again" if sig == signal.SIGINT else "a second SIGTERM"


@dataclass
class _Stopping:
    """One client (or simulation) that the signals stop."""

    stop: asyncio.Event
    outlook: Callable[[], str]
    before_exit: Callable[[], None] | None
    level: int


@dataclass
class _Handlers:
    """The handlers installed on one loop, shared by every ``stop_on_signals`` open on it."""

    previous: dict[int, Any]
    stopping: list[_Stopping] = field(default_factory=list)
    received: list[int] = field(default_factory=list)


_installed: dict[asyncio.AbstractEventLoop, _Handlers] = {}


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
    default, and the line must show). Several may be open on one loop at once (two in-process
    clients): one set of handlers stops them all, and stays until the last one closes. Off
    the main thread nothing is installed (Python allows it only there) and the caller stops
    the client its own way.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    loop = asyncio.get_running_loop()
    handlers = _installed.get(loop)
    if handlers is None:
        handlers = _installed[loop] = _Handlers({sig: signal.getsignal(sig) for sig in SIGNALS})
        for sig in SIGNALS:
            loop.add_signal_handler(sig, _on_signal, handlers, sig)
    mine = _Stopping(stop, outlook, before_exit, level)
    handlers.stopping.append(mine)
    try:
        yield True
    finally:
        handlers.stopping.remove(mine)
        if not handlers.stopping:
            del _installed[loop]
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
                if handlers.previous[sig] is not None:
                    signal.signal(sig, handlers.previous[sig])


def _on_signal(handlers: _Handlers, sig: int) -> None:
    handlers.received.append(sig)
    name = signal.Signals(sig).name
    if len(handlers.received) == 1:
        for each in list(handlers.stopping):
            log.log(each.level, "stopping on %s: %s; %s to stop now", name, each.outlook(), _again(sig))
            each.stop.set()
        return
    log.warning("%s again: stopping now", name)
    for each in handlers.stopping:
        if each.before_exit is not None:
            with contextlib.suppress(Exception):
                each.before_exit()
    flush_background_stderr(1.0)
    os._exit(128 + sig)
