"""The task worker: one task at a time from the inbox, and the way it stops.

On stop no new task is started; the running one may finish within the grace period
(``shutdown_grace``), then the worker is drained and the session supervisor
(``domain.session``) ends the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from .inbox import TaskInbox
from .model import Task
from .ports import Clock
from .stopping import stopped_first
from .tasks import TaskRunner

# The lifecycle's logger: these lines keep the `logger` they have always had (docs/OPERATING.md).
log = logging.getLogger("fedclient.lifecycle")


@dataclass
class TaskWorker:
    runner: TaskRunner
    inbox: TaskInbox  # tasks received and not yet started
    clock: Clock
    grace: float  # on stop, the running task may finish for this long
    stop: asyncio.Event
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)  # stopped, and the running task over
    task: asyncio.Task[None] | None = field(default=None, init=False)  # the loop taking tasks
    _watcher: asyncio.Task[None] | None = field(default=None, init=False)
    _running: Task | None = field(default=None, init=False)  # the task being handled

    def start(self) -> None:
        self.idle.set()
        self.drained.clear()
        self.task = asyncio.create_task(self._work(), name="fedclient-worker")
        self._watcher = asyncio.create_task(self._watch_stop(), name="fedclient-stop-watch")

    def stop_outlook(self) -> str:
        """What stopping now waits for, in words (the app's stop line says it; the running task's kind)."""
        running = self._running
        if running is None or self.idle.is_set():
            return "no task is running"
        return f"waiting for the running {running.kind.value} task, up to {self.grace:.0f} s"

    async def finish(self) -> None:
        """Cancel the stop watch and the task loop, each bounded in time."""
        for task in (self._watcher, self.task):
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
                await asyncio.wait_for(task, 10.0)

    async def _watch_stop(self) -> None:
        """On stop: let the running task finish within the grace period, then declare the worker drained."""
        await self.stop.wait()
        log.debug("stopping: no new tasks; %s", self.stop_outlook())
        if not self.idle.is_set() and not await stopped_first(self.idle, self.clock.sleep(self.grace)):
            log.warning("the running task did not finish within %.0f s; cancelling it", self.grace)
        self.drained.set()

    async def _work(self) -> None:
        while True:
            task = await self.inbox.get()
            if self.stop.is_set():
                log.warning(
                    "stopping: %s task for model %s not started (correlation %s)",
                    task.kind.value,
                    task.model_id,
                    task.correlation_id,
                )
                continue
            self.idle.clear()
            self._running = task
            try:
                await self.runner.handle(task)
            finally:
                self._running = None
                self.idle.set()
