"""One connection to a combiner: connect, read the task stream, beat, send telemetry, resend results.

``Connection.session`` runs one such connection until it ends and says how it went
("stopped", "healthy" or "failed"); the session supervisor (``domain.session``) decides
what comes next. The outage bookkeeping (tries and time until the combiner is back) lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from .credentials import Credentials, RefreshingLink
from .errors import AuthError, FedClientError, StreamEnded, TransientError
from .inbox import TaskInbox
from .links import LinkHolder
from .model import CombinerAddress, Identity
from .observe import Link, Observer
from .outbox import Outbox
from .ports import Clock, CombinerConnector
from .pulse import Pulse
from .worker import TaskWorker

# The lifecycle's logger: these lines keep the `logger` they have always had (docs/OPERATING.md).
log = logging.getLogger("fedclient.lifecycle")

# A connection that delivered tasks or stayed up this long resets the reconnect backoff.
HEALTHY_SESSION_SECONDS = 30.0


@dataclass(frozen=True)
class Where:
    """The combiner the client is attached to, and the identity it joins as there."""

    combiner: CombinerAddress
    identity: Identity


@dataclass
class Connection:
    connector: CombinerConnector
    links: LinkHolder  # the current link: set here, borrowed by tasks and the outbox
    credentials: Credentials
    observer: Observer
    clock: Clock
    pulse: Pulse
    outbox: Outbox  # resends what it holds on each new connection
    connects: int = 0
    tasks_received: int = 0
    _outage: tuple[int, float] | None = None  # (connect attempts, since) while the combiner is away

    def outage_begins(self) -> None:
        """The connection is gone (or not made yet): the outage starts now, unless it already runs."""
        if self._outage is None:
            self._outage = (0, self.clock.monotonic())

    def forget_outage(self) -> None:
        """Moved to another combiner: the old one's outage is not reported."""
        self._outage = None

    async def session(self, where: Where, worker: TaskWorker) -> str:
        """One connection: returns 'stopped', 'healthy' (got tasks or lasted) or 'failed'."""
        target = where.combiner.target
        self.observer.link(Link.CONNECTING, target)
        if self._outage is not None:
            self._outage = (self._outage[0] + 1, self._outage[1])
        try:
            link = await self.connector.connect(where.combiner, where.identity)
        except TransientError as exc:
            log.warning("cannot connect to combiner %s: %s", target, exc)
            self.observer.link(Link.DISCONNECTED, target)
            return "failed"
        except BaseException:
            self.observer.link(Link.DISCONNECTED, target)
            raise
        self.links.set(RefreshingLink(link, self.credentials))
        self.observer.link(Link.CONNECTED, target)
        self.connects += 1
        self._report_back(target)
        received_before, opened = self.tasks_received, self.clock.monotonic()
        assert worker.task is not None
        reader = asyncio.create_task(self._read(worker.inbox), name="fedclient-reader")
        beats = asyncio.create_task(self.pulse.heartbeats(), name="fedclient-heartbeat")
        drained = asyncio.create_task(worker.drained.wait(), name="fedclient-drained")
        stopping = asyncio.create_task(worker.stop.wait(), name="fedclient-stop")
        flusher = asyncio.create_task(self.outbox.flush(), name="fedclient-outbox")
        watched: set[asyncio.Future[object]] = {reader, beats, drained, stopping, worker.task}  # type: ignore[arg-type]
        outcome = "failed"
        # Telemetry is informative: it never ends a session, so it is not waited on below.
        telemetry = asyncio.create_task(self.pulse.telemetry(), name="fedclient-telemetry")
        try:
            while True:
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if drained in done:
                    outcome = "stopped"
                    return outcome
                if stopping in done:
                    # Stop taking tasks; heartbeats go on while the running task finishes.
                    watched -= {stopping, reader}
                    reader.cancel()
                    done -= {stopping, reader}
                    if not done:
                        continue
                if worker.task in done:
                    if worker.task.cancelled():
                        raise FedClientError("the task worker was cancelled unexpectedly")
                    died = worker.task.exception() or FedClientError("the task worker ended unexpectedly")
                    if isinstance(died, AuthError):  # the task already renewed once: final
                        raise self.credentials.final(died)
                    raise died
                for finished in (beats, reader):
                    error = finished.exception() if finished in done else None
                    if error is not None and not isinstance(error, TransientError):
                        raise error
                if reader in done:
                    lost = reader.exception()
                    if isinstance(lost, StreamEnded):
                        log.warning("combiner %s closed the task stream", target)
                    else:
                        log.warning("task stream to %s lost: %s", target, lost)
                if beats in done:
                    log.warning("connection to %s lost: %s", target, beats.exception())
                lasted = self.clock.monotonic() - opened
                healthy = self.tasks_received > received_before or lasted >= HEALTHY_SESSION_SECONDS
                return "healthy" if healthy else "failed"
        finally:
            for helper in (reader, beats, drained, stopping, telemetry, flusher):
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await helper
            if outcome != "stopped":  # on stop, the shutdown hooks still get the open link
                await self.close_link(target)  # (reports the link down to the observer)

    def _report_back(self, target: str) -> None:
        """After an outage: how many tries and how long it took to reach the combiner (again)."""
        if self._outage is None:
            return
        tries, since = self._outage
        if self.connects > 1 or tries > 1:
            log.info(
                "combiner %s %s after %d %s, %.0f s",
                target,
                "back" if self.connects > 1 else "reached",
                tries,
                "try" if tries == 1 else "tries",
                self.clock.monotonic() - since,
            )
        self._outage = None

    async def _read(self, queue: TaskInbox) -> None:
        link = self.links.current()
        if link is None:
            raise TransientError("not connected to a combiner")
        async for task in link.tasks():
            self.tasks_received += 1
            log.info(
                "received %s task for model %s (session %s)",
                task.kind.value,
                task.model_id,
                task.session_id or "-",
            )
            queue.admit(task)
        raise StreamEnded("the combiner closed the task stream")

    async def flush_outbox(self, limit: float) -> None:
        """Deliver what the outbox holds within ``limit`` seconds, if connected."""
        if not self.outbox.pending() or self.links.current() is None:
            return
        tally = await self.outbox.flush_within(limit)
        if tally is None:
            log.warning(
                "outbox: %d result(s) not delivered within %.0f s; kept for the next start",
                len(self.outbox.pending()),
                limit,
            )

    async def close_link(self, target: str | None) -> None:
        link = self.links.take()
        if link is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.close(), 10.0)
            self.observer.link(Link.DISCONNECTED, target)
