"""Tasks received and not yet started: bounded, deduplicated, and never stale.

- A task whose correlation id was already received is not run again.
- The queue holds at most ``limit`` tasks; when full the oldest is dropped.
- A training task of a round superseded by a newer one, or whose round's
  deadline passed while it waited, is dropped when its turn comes.
- ``drop_all`` empties the queue after a reconnect or a reassignment.
Every drop is logged with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable

from .model import Task, TaskKind
from .rounds import RoundWatch, round_timeout

log = logging.getLogger("fedclient.tasks")

DEFAULT_LIMIT = 8
REMEMBERED_IDS = 1024


class TaskInbox:
    def __init__(
        self,
        watch: RoundWatch,
        limit: int = DEFAULT_LIMIT,
        *,
        wall: Callable[[], float],  # wall-clock seconds (a Clock's time): round deadlines
        remember: int = REMEMBERED_IDS,
    ) -> None:
        if limit < 1:
            raise ValueError("the task queue must hold at least one task")
        self.watch = watch
        self.limit = limit
        self._wall = wall
        self._queue: deque[Task] = deque()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._ready = asyncio.Event()
        self.dropped: deque[tuple[Task, str]] = deque(maxlen=REMEMBERED_IDS)

    def __len__(self) -> int:
        return len(self._queue)

    def admit(self, task: Task) -> bool:
        """Queue a task just received; False (and a log line) if it is not going to run."""
        if task.correlation_id:
            if task.correlation_id in self._seen:
                self._drop(task, f"correlation id {task.correlation_id} was already received")
                return False
            self._seen[task.correlation_id] = None
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        self.watch.saw(task, self._wall())
        if len(self._queue) >= self.limit:
            self._drop(self._queue.popleft(), f"the task queue is full ({self.limit} tasks)")
        self._queue.append(task)
        self._ready.set()
        return True

    async def get(self) -> Task:
        """The next task that is still worth running."""
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            task = self._queue.popleft()
            reason = self.stale(task)
            if reason is None:
                return task
            self._drop(task, reason)

    def stale(self, task: Task) -> str | None:
        if task.kind is not TaskKind.TRAIN:
            return None
        newer = self.watch.newer_round(task.session_id, task.round_id)
        if newer is not None:
            return f"round {task.round_id} was superseded by round {newer}"
        opened, timeout = self.watch.opened_at(task), round_timeout(task)
        if opened is not None and timeout is not None and self._wall() >= opened + timeout:
            return f"round {task.round_id} closed while the task waited ({timeout:g} s round timeout)"
        return None

    def drop_all(self, reason: str) -> int:
        count = len(self._queue)
        while self._queue:
            self._drop(self._queue.popleft(), reason)
        return count

    def _drop(self, task: Task, reason: str) -> None:
        self.dropped.append((task, reason))
        log.warning(
            "dropping %s task for model %s (correlation id %s): %s",
            task.kind.value,
            task.model_id,
            task.correlation_id or "-",
            reason,
        )
