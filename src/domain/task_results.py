"""A finished training or validation result handed to the outbox, and what became of it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .model import Task
from .outbox import DEFAULT_MAX_AGE, Delivery, Outbox, OutboxEntry, ResultKind
from .ports import Clock, Ids
from .results import TrainingOutcome, ValidationOutcome
from .rounds import round_timeout

log = logging.getLogger("fedclient.tasks")


@dataclass(frozen=True)
class ResultFiler:
    """Writes a task's result into the outbox, with the deadline of its round, and delivers it."""

    outbox: Outbox
    clock: Clock  # the wall-clock time a result was made, and its deadline
    ids: Ids  # each entry's key
    max_age: float = DEFAULT_MAX_AGE  # results with no round deadline are kept this long

    async def deliver(
        self,
        task: Task,
        kind: ResultKind,
        outcome: TrainingOutcome | ValidationOutcome,
        model: Path | None = None,
    ) -> tuple[Delivery, str]:
        """The result written durably, then delivered; how it went and (updates) the id it was sent as."""
        entry = await self.outbox.add(self._entry(task, kind, outcome), model)
        delivery = await self.outbox.deliver(entry.key)
        if delivery is Delivery.PENDING:
            log.warning(
                "%s result for model %s waits in the outbox for the connection to come back",
                task.kind.value,
                task.model_id,
            )
        return delivery, self.outbox.result_id(entry.key)

    def _entry(
        self, task: Task, kind: ResultKind, payload: TrainingOutcome | ValidationOutcome
    ) -> OutboxEntry:
        """A finished result, with the wall-clock time after which its round no longer takes it."""
        now = self.clock.time()
        opened = self.outbox.watch.opened_at(task)
        timeout = round_timeout(task) if kind is ResultKind.UPDATE else None
        expires = (opened if opened is not None else now) + timeout if timeout else now + self.max_age
        return OutboxEntry(
            key=self.ids.new_id().replace("-", ""),  # a plain file name (a UUID's 32 hex digits)
            kind=kind,
            model_id=task.model_id,
            receiver_name=task.sender_name,
            correlation_id=task.correlation_id,
            session_id=task.session_id,
            round_id=task.round_id,
            payload=payload,
            task_data=task.data,
            created_at=now,
            expires_at=expires,
        )
