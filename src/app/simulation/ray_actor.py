"""One Ray actor of `fedclient simulate --ray`: a ``ClientGroup`` in the actor's own event loop.

The actor is the same group of production clients one-process ``simulate`` runs
(``app/simulation/group.py``, built by the composition root), only in a Ray worker process on
whichever node Ray placed it. Nothing here imports Ray at module level except for the
node id: ``app/simulation/ray_driver.py`` wraps this class with ``ray.remote`` when it creates the actors.

The actor gets the compute package as the bytes of its archive (the driver's directory
is not on the other nodes), unpacks it into a scratch directory of its own, and answers
with plain data only: its node id, pid, RSS and every finished task as a tuple.

Its scratch directory (``fedclient-ray-<run>-*`` in the node's temporary dir) holds a file
with the actor's host name and pid. The actor removes it when it closes, which it does within
``CLOSE_WITHIN`` of the stop, before the driver's kill. An actor that was killed anyway (its
node lost, or a callback that ignored the stop) cannot: the next actor on that machine removes
every such directory of that machine whose pid is no longer alive.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...adapters.package_archive import TarPackageUnpacker
from ..logs import configure_logging
from .group import ClientGroup, GroupSpec, busy_callback_threads, rss_mib
from .scratch import remove_scratch, remove_tree

# Seconds an actor takes at most to close its clients after the stop: a running callback gets
# what is left of it, not a one-process group's full grace, so the actor reports and removes
# its scratch before the driver kills it (ray_driver.STOP_WAIT).
CLOSE_WITHIN = 4.5
SCRATCH_PREFIX = "fedclient-ray-"
OWNER = "actor.pid"  # in an actor's scratch dir: the pid that removes it


class GroupActor:
    """``spec.count`` clients; ``start`` builds them, ``run`` returns once ``stop`` was called."""

    def __init__(self, spec: GroupSpec, package_archive: bytes) -> None:
        configure_logging(spec.log_level)
        sweep_stale_scratch(Path(tempfile.gettempdir()))
        self._scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{spec.run_id}-"))
        (self._scratch / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}")
        archive = self._scratch / "package.tgz"
        archive.write_bytes(package_archive)
        package = TarPackageUnpacker().unpack(archive, self._scratch / "package")
        archive.unlink()
        self.spec = replace(spec, package=package, work=self._scratch / "clients")
        self._stop: asyncio.Event | None = None
        self._group: ClientGroup | None = None

    async def start(self) -> dict[str, Any]:
        """Build and start the clients (they join in the background); where they run."""
        import ray

        rss_before = rss_mib()  # the worker with fedclient imported, no client yet
        self._stop = asyncio.Event()
        self._group = ClientGroup(self.spec, self._stop)
        await self._group.start()
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "scratch": str(self._scratch),
            "rss_before_mib": rss_before,
        }

    async def status(self) -> dict[str, Any]:
        """How far the clients got: connected, and the first error of a client that stopped."""
        assert self._group is not None
        failed = [r for r in self._group.runners if r.done() and not r.cancelled() and r.exception()]
        error = ""
        if failed:
            exc = failed[0].exception()
            error = f"{type(exc).__name__}: {exc}"
        return {
            "connected": self._group.times.connected,
            "failed": len(failed),
            "error": error,
            "rss_mib": rss_mib(),
        }

    async def stop(self) -> dict[str, Any]:
        """Stop the clients; the report so far (``run``'s, when it comes in time, is the final one)."""
        if self._stop is not None:
            self._stop.set()
        return self._report(0)

    def _report(self, abandoned: int) -> dict[str, Any]:
        times = self._group.times if self._group is not None else None
        return {
            "tasks": [(t.kind, t.latency, t.trainer, dict(t.calls)) for t in times.done] if times else [],
            "connected": times.connected if times else 0,
            "abandoned": abandoned,
            "rss_mib": rss_mib(),
            "rss_peak_mib": rss_mib("VmHWM"),
        }

    async def run(self) -> dict[str, Any]:
        """Serve until ``stop``; then close the clients and report every finished task."""
        assert self._group is not None and self._stop is not None
        try:
            await self._stop.wait()
            try:
                abandoned = await asyncio.wait_for(self._group.close(), CLOSE_WITHIN)
            except TimeoutError:  # a callback still running: it is abandoned with the actor
                abandoned = busy_callback_threads(0.0)
            return self._report(abandoned)
        finally:
            remove_own_scratch(self._scratch)


def remove_own_scratch(scratch: Path) -> None:
    """The actor's scratch, its pid file last: if the driver's kill cuts this short, the rest
    is still found by the next actor's sweep."""
    for entry in scratch.iterdir() if scratch.is_dir() else ():
        if entry.name == OWNER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            remove_scratch(entry)  # the clients' work dir: their scratch, spread over threads
            remove_tree(entry)
        else:
            entry.unlink(missing_ok=True)
    shutil.rmtree(scratch, ignore_errors=True)


def sweep_stale_scratch(root: Path) -> list[Path]:
    """Remove the scratch dirs in ``root`` of actors that died without removing them; those removed."""
    removed = []
    here = socket.gethostname()
    for scratch in root.glob(f"{SCRATCH_PREFIX}*"):
        try:
            host, pid = (scratch / OWNER).read_text().split()
            alive = host != here or _alive(int(pid))  # another machine's (a shared /tmp): its own
        except (OSError, ValueError):
            continue  # not an actor's (the driver's work dir has no owner), or one being made
        if not alive:
            shutil.rmtree(scratch, ignore_errors=True)
            removed.append(scratch)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
