"""Log lines leave the process on a thread of their own, so a stalled reader never stalls the client.

A client whose stderr is a pipe that nobody reads (a supervisor that reads only at
the end, ``| less`` left paused) would otherwise block in ``write()`` on whatever
thread logged, the event loop included: heartbeats stop, and so does signal handling.
Here the logging call only puts the formatted line on a bounded queue; a daemon thread
writes it to file descriptor 2 with ``os.write`` (no Python lock is held while it
blocks, so exiting never waits for it). When the queue is full, lines are dropped and
counted, and the count is written as soon as the reader catches up. See
docs/RELIABILITY.md, "Graceful shutdown".
"""

from __future__ import annotations

import atexit
import os
import queue
import select
import threading
import time

# About 2 MB of typical log lines; past that a stalled reader costs lines, never memory or time.
QUEUE_LINES = 10_000
EXIT_FLUSH_SECONDS = 2.0


class StderrWriter:
    """Writes queued text to ``fd`` on a daemon thread; ``write`` never blocks."""

    def __init__(self, fd: int, limit: int = QUEUE_LINES) -> None:
        self._fd = fd
        self._queue: queue.Queue[str] = queue.Queue(limit)
        self._lock = threading.Lock()
        self._dropped = 0
        self._broken = False
        self._thread = threading.Thread(target=self._pump, name="fedclient-stderr", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def write(self, text: str) -> int:
        try:
            self._queue.put_nowait(text)
        except queue.Full:
            with self._lock:
                self._dropped += 1
        return len(text)

    def flush(self, timeout: float = 0.0) -> bool:
        """Wait up to ``timeout`` s for what is queued to be written; True when it was."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and not self._broken:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _pump(self) -> None:
        while True:
            text = self._queue.get()
            try:
                with self._lock:
                    dropped, self._dropped = self._dropped, 0
                if dropped:
                    self._write_all(f"fedclient: {dropped} log line(s) dropped: stderr was not being read\n")
                self._write_all(text)
            finally:
                self._queue.task_done()

    def _write_all(self, text: str) -> None:
        if self._broken:
            return
        data = text.encode("utf-8", "replace")
        try:
            while data:
                try:
                    data = data[os.write(self._fd, data) :]
                except BlockingIOError:  # a non-blocking stderr that is full: wait until it drains
                    select.select([], [self._fd], [])
        except OSError:  # the reader is gone (EPIPE) or the descriptor closed: nothing more to say
            self._broken = True


_writer: StderrWriter | None = None
_writer_lock = threading.Lock()


def background_stderr() -> StderrWriter:
    """The process's one writer to file descriptor 2, started on first use and flushed at exit."""
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = StderrWriter(2)
            atexit.register(_writer.flush, EXIT_FLUSH_SECONDS)
        return _writer


def _forget_in_child() -> None:
    """A forked child has the writer but not its thread: it starts its own on first use."""
    global _writer, _writer_lock
    _writer, _writer_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def flush_background_stderr(timeout: float) -> None:
    """Let queued log lines out first (before a final line printed straight to stderr), bounded."""
    if _writer is not None:
        _writer.flush(timeout)
