"""The session supervisor: keep a task stream open until the client is stopped.

``Supervisor.serve`` starts the task worker (``domain.worker``), runs one connection
after the other (``domain.connection``), reconnects with backoff, asks the controller
again (``domain.assigner``) after ``reassign_after`` failed connections in a row, renews
a refused token once, and on the way out runs the shutdown hooks (flushing the outbox)
and closes the link, every step bounded in time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from .assigner import Assigner
from .connection import Connection, Where
from .credentials import Credentials
from .errors import AuthError, FedClientError
from .inbox import TaskInbox
from .plan import ClientPlan
from .ports import Clock, Random, ShutdownHook
from .retry import next_delay
from .stopping import Stopped, stopped_first
from .tasks import TaskRunner
from .worker import TaskWorker

# The lifecycle's logger: these lines keep the `logger` they have always had (docs/OPERATING.md).
log = logging.getLogger("fedclient.lifecycle")


@dataclass
class Supervisor:
    plan: ClientPlan
    connection: Connection
    assigner: Assigner  # for re-assignment after a long outage
    credentials: Credentials
    clock: Clock
    random: Random  # backoff jitter
    # Run once on the way out, after the last task and before the link closes.
    shutdown_hooks: list[ShutdownHook] = field(default_factory=list)
    where: Where | None = None  # set by the lifecycle once assigned; changed by a re-assignment
    worker: TaskWorker | None = None  # while serving
    reassignments: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self, stop: asyncio.Event) -> None:
        """The client starts: the stop event every wait watches, and the usage meters from now."""
        self._stop = stop
        self.connection.pulse.start()

    def client_id(self) -> str:
        """The id the client joins as now (the controller may have given another than the plan's)."""
        return (self.where.identity if self.where else self.plan.identity).client_id

    def stop_outlook(self) -> str:
        """What stopping now waits for, in words (the app's stop line says it)."""
        return self.worker.stop_outlook() if self.worker is not None else "no task is running"

    async def serve(self, runner: TaskRunner) -> None:
        """Keep a task stream open, reconnecting with backoff, until stopped (then drain and flush)."""
        assert self.where is not None
        inbox = TaskInbox(runner.outbox.watch, self.plan.task_queue_limit, wall=self.clock.time)
        worker = self.worker = TaskWorker(runner, inbox, self.clock, self.plan.shutdown_grace, self._stop)
        worker.start()
        failures = 0
        self.connection.outage_begins()
        try:
            while not worker.drained.is_set():
                seen = self.credentials.version
                try:
                    outcome = await self.connection.session(self.where, worker)
                except AuthError as exc:
                    if await self.credentials.renew(seen, exc):
                        log.info("reconnecting to %s with the refreshed token", self.where.combiner.target)
                        continue
                    raise self.credentials.final(exc) from None
                if outcome == "stopped":
                    return
                inbox.drop_all("the connection to the combiner was lost before the task started")
                failures = 0 if outcome == "healthy" else failures + 1
                self.connection.outage_begins()
                if failures and failures % self.plan.reassign_after == 0:
                    await self._reassign(failures)
                delay = next_delay(max(failures, 1), self.plan.reconnect_retry, rand=self.random.uniform())
                log.info(
                    "reconnecting to %s in %.1f s (attempt %d)",
                    self.where.combiner.target,
                    delay,
                    failures + 1,
                )
                if await stopped_first(worker.drained, self.clock.sleep(delay)):
                    return
        except Stopped:
            return
        finally:
            await self._finish(worker)

    async def _finish(self, worker: TaskWorker) -> None:
        """Cancel what still runs, run the shutdown hooks, close the link: every step bounded."""
        await worker.finish()
        for hook in self.shutdown_hooks:
            try:
                await asyncio.wait_for(hook(), self.plan.flush_timeout)
            except TimeoutError:
                log.warning("shutdown hook %s did not finish in %.0f s", hook, self.plan.flush_timeout)
            except Exception:  # a failing hook must not keep the client from closing
                log.exception("shutdown hook %s failed", hook)
        await self.connection.close_link(self.where.combiner.target if self.where else None)

    async def _reassign(self, failures: int) -> None:
        """Ask the controller again after a long outage, with a bounded budget; else keep the old combiner."""
        if self.assigner.discovery is None or self.plan.combiner is not None:
            return
        assert self.where is not None
        old = self.where.combiner
        budget = self.plan.reassign_budget
        log.warning(
            "combiner %s failed %d times in a row; asking the controller for a combiner (up to %d times)",
            old.target,
            failures,
            budget,
        )
        self.reassignments += 1
        try:
            assigned = await self.assigner.assign(self._stop, budget=budget)
        except (AuthError, Stopped):
            raise
        except FedClientError as exc:
            log.warning("the controller could not reassign us (%s); back to %s", exc, old.target)
            return
        if assigned is None:
            log.warning("the controller gave no combiner in %d tries; back to %s", budget, old.target)
            return
        self.where = Where(assigned.combiner, assigned.identity or self.where.identity)
        if assigned.combiner != old:
            log.warning(
                "the controller moved us from combiner %s to %s", old.target, assigned.combiner.target
            )
            self.connection.forget_outage()
        else:
            log.info("the controller kept us on combiner %s", old.target)
