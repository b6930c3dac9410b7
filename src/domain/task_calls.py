"""A task's own calls to the combiner, and the status reports it queues on the way.

``TaskCalls`` makes the calls a task waits for (model downloads, and what is sent without
the outbox: predictions, split-learning embeddings and backward completions, metrics and
attributes), each waiting for a connection first and retried with the plan's backoff.
``StatusReporter`` sends the task's status events in the background, in order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import AuthError, FedClientError
from .links import LinkHolder
from .model import AttributeReport, MetricReport, TaskStatus
from .ports import Clock, CombinerLink, Random
from .retry import RetryConfig, call_with_retry

log = logging.getLogger("fedclient.tasks")
T = TypeVar("T")

# The plan's delivery_retry has no attempt limit: the outbox's round rules end its retries. A task's
# own calls to the combiner have no such rule, so they use its backoff but give up after this many
# tries, each waiting for a connection first, and the task is reported failed: a FAILED status to
# the combiner and a log line, never silently.
DIRECT_ATTEMPTS = 8


def direct_retry(delivery_retry: RetryConfig) -> RetryConfig:
    """The plan's delivery backoff, bounded to ``DIRECT_ATTEMPTS`` tries if it has no limit of its own."""
    if delivery_retry.max_attempts is not None:
        return delivery_retry
    return dataclasses.replace(delivery_retry, max_attempts=DIRECT_ATTEMPTS)


@dataclass(frozen=True)
class TaskCalls:
    """The calls a task makes over whatever combiner link the holder has now, retried."""

    links: LinkHolder
    clock: Clock
    random: Random  # backoff jitter
    retry: RetryConfig  # bounded: see direct_retry

    async def retried(self, attempt: Callable[[CombinerLink], Awaitable[T]], what: str) -> T:
        """``attempt`` on the current link (waiting for one), retried with backoff; its result."""

        async def once() -> T:
            return await attempt(await self.links.wait())

        result: T = await call_with_retry(
            once,
            self.retry,
            self.clock.sleep,
            what,
            now=self.clock.monotonic,
            rand=self.random.uniform,
        )
        return result

    async def send(self, call: Callable[[CombinerLink], Awaitable[Any]], what: str) -> None:
        await self.retried(call, what)

    async def download(self, model_id: str, dest: Path) -> None:
        await self.send(lambda link: link.download(model_id, dest), f"downloading model {model_id}")

    async def send_metric(self, report: MetricReport) -> None:
        await self.send(lambda link: link.send_metric(report), f"sending metrics (step {report.step})")

    async def send_attributes(self, report: AttributeReport) -> None:
        await self.send(lambda link: link.send_attributes(report), "sending attributes")


@dataclass
class StatusReporter:
    """A task's status reports, sent in the background one after another."""

    links: LinkHolder
    _statuses: list[asyncio.Task[None]] = field(default_factory=list)  # in flight, oldest first

    def report(self, status: TaskStatus) -> None:
        """Queue a status report; the task goes on while it is sent (in order, one after another).

        Status lines are informative: losing one (no connection right now) never fails a
        task. Waiting for each one held every task up by a combiner round trip (about
        half of a 1 MiB task's overhead against FEDn 0.33, docs/PERFORMANCE.md), so they
        are sent in the background and the runner waits for them only at a task's end.
        """
        previous = self._statuses[-1] if self._statuses else None
        self._statuses.append(asyncio.ensure_future(self._send(previous, status)))

    async def _send(self, previous: asyncio.Task[None] | None, status: TaskStatus) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # keep the order; its outcome is collected by all_sent
        link = self.links.current()
        if link is None:
            log.warning("not connected; status %r not sent", status.describe())
            return
        try:
            await link.send_status(status)
        except AuthError:
            raise
        except FedClientError as exc:
            log.warning("could not send status %r: %s", status.describe(), exc)

    async def all_sent(self) -> None:
        """Wait until the queued status reports are out; an AuthError among them is raised here."""
        pending, self._statuses = self._statuses, []
        if not pending:
            return
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            for status in pending:
                status.cancel()
            raise
        for status in pending:
            error = None if status.cancelled() else status.exception()
            if error is not None:
                raise error  # only AuthError escapes _send
