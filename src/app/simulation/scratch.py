"""Scratch space for a group of simulated clients: removed as a real client's is, except at the stop.

A stop cuts every simulated client's task short at once: 5,000 task directories to delete
together, each ``shutil.rmtree`` on asyncio's default thread pool, which ``asyncio.run``
waits for before the process may exit (about 9 s of the 21 s a 5,000-client stop took,
docs/PERFORMANCE.md). Once the group stops, a directory is renamed into the group's trash
instead (one system call), and the group removes the trash in one pass when it closes.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from pathlib import Path

from ...adapters.scratch import TempScratch


class GroupScratch(TempScratch):
    def __init__(self, trash: Path) -> None:
        self._trash = trash
        self._stopping = threading.Event()
        self._names = itertools.count()

    def stopping(self) -> None:
        """From now on a removal is a rename into the trash."""
        self._trash.mkdir(parents=True, exist_ok=True)
        self._stopping.set()

    def remove(self, directory: Path) -> None:
        if self._stopping.is_set():
            try:
                os.rename(directory, self._trash / f"{next(self._names)}-{directory.name}")
                return
            except OSError:  # another file system, or gone already: remove it here
                pass
        super().remove(directory)

    def empty_trash(self) -> None:
        shutil.rmtree(self._trash, ignore_errors=True)
