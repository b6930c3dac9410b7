"""Scratch space for a group of simulated clients: shared by the group, and set aside at the stop.

Every task's directory is made in the group's one ``tasks`` directory (not in a
``client-<n>/tasks`` of each client), and their outbox models share one directory too
(``outbox_dir``), both under ``SCRATCH`` in the work dir: at 5,000 clients the directories
of each client alone were 15,000 to remove at the end, about 1 s on this file system.

A stop cuts every simulated client's task short at once: 5,000 task directories to delete
together, each ``shutil.rmtree`` on asyncio's default thread pool, which ``asyncio.run``
waits for before the process may exit (about 9 s of the 21 s a 5,000-client stop took,
docs/PERFORMANCE.md). Once the group stops, a directory is renamed into the group's trash
instead (one system call), and the trash is removed in one pass with the work dir, once the
event loop has ended (a thread removing it beside a busy loop took 5.7 s for 5,000).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ...adapters.scratch import TempScratch

# In a group's work dir (which may be a directory of the user's, --work-dir): everything the
# group's clients write goes under one name of its own, so removing it touches nothing else.
SCRATCH = "simulated-clients"
TASKS = "tasks"
OUTBOX = "outbox"
TRASH = "trash"
# Threads that remove a work dir at the end. Removing is waiting on the disk: what 5,000 clients
# left at a stop (2,800 task dirs, 7,400 files) took 4.8-6.7 s in one thread, 1.7 s in 8.
REMOVERS = 8


def outbox_dir(work: Path) -> Path:
    """Where the group's clients keep their outbox models (one directory for all, names prefixed)."""
    return work / SCRATCH / OUTBOX


def remove_scratch(work: Path) -> None:
    """What a group leaves in its work dir that nothing needs after it (the rest is kept)."""
    remove_tree(work / SCRATCH)


def remove_tree(root: Path) -> None:
    """``shutil.rmtree(root)``, the entries one level below it removed by ``REMOVERS`` threads at once.

    Each thread takes a share of the entries up front: one future per entry (23,000 at a
    5,000-client stop) had the submitting thread wait for the GIL on every one.
    """
    if os.path.islink(root):
        return  # never followed (shutil.rmtree refuses a link too)
    entries: list[str] = []
    try:
        for top in os.scandir(root):
            if top.is_dir(follow_symlinks=False):
                entries += [entry.path for entry in os.scandir(top.path)]
    except OSError:
        pass  # gone already, or not a directory: rmtree below says nothing either
    with ThreadPoolExecutor(REMOVERS, thread_name_prefix="fedclient-sim-remove") as pool:
        for _ in pool.map(_remove_all, [entries[i::REMOVERS] for i in range(REMOVERS)]):
            pass
    shutil.rmtree(root, ignore_errors=True)


def _remove_all(paths: list[str]) -> None:
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


class GroupScratch(TempScratch):
    def __init__(self, work: Path) -> None:
        self._tasks = work / SCRATCH / TASKS
        self._trash = work / SCRATCH / TRASH
        self._stopping = threading.Event()
        self._names = itertools.count()

    def make(self, parent: Path, prefix: str) -> Path:
        """A new private directory in the group's ``tasks`` (not in ``parent``, the client's)."""
        self._tasks.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self._tasks))

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

    @property
    def trash(self) -> Path:
        return self._trash
