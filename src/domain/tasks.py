"""Running one task: download the model, run the user's code, send the result back.

A task never takes the client down: whatever goes wrong is reported to the
combiner as a FAILED status and the client moves on to the next task. Only a
refused token (AuthError) and cancellation (the client is stopping) get through.

What the runner reports is typed (``TaskStatus`` events, ``domain.results`` outcomes);
the transport's conversions phrase them for the server. The runner keeps the frame
(states, scratch space, the task context, failures, the outcome history); each kind of
task is done by its handler (``domain.task_kinds``), over the task's calls and status
reports (``domain.task_calls``) and the outbox (``domain.task_results``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import AuthError, FedClientError
from .model import Stage, Task, TaskKind, TaskStatus, failure_message
from .observe import NULL_OBSERVER, Observer, log_scope
from .outbox import Delivery, Outbox
from .ports import Scratch, Trainer
from .redaction import redact
from .state import StateMachine
from .task_calls import DIRECT_ATTEMPTS, StatusReporter, TaskCalls
from .task_context import CURRENT_TASK, TaskContext
from .task_kinds import TaskHandler, TaskWork

__all__ = ["DIRECT_ATTEMPTS", "OUTCOME_HISTORY", "TaskOutcome", "TaskRunner"]

log = logging.getLogger("fedclient.tasks")

# How many task outcomes are kept in memory (the newest).
OUTCOME_HISTORY = 64


@dataclass
class TaskOutcome:
    task: Task
    ok: bool
    error: str = ""
    delivery: Delivery | None = None  # for results that go through the outbox


class TaskRunner:
    """Executes tasks one at a time: each by the handler for its kind, with the trainer it is given."""

    def __init__(
        self,
        handlers: Mapping[TaskKind, TaskHandler],
        calls: TaskCalls,
        statuses: StatusReporter,
        outbox: Outbox,
        state: StateMachine,
        scratch: Scratch,
        work_dir: Path,
        *,
        trainer: Trainer,
        model_suffix: str = ".npz",
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._handlers = dict(handlers)
        self._calls = calls
        self._statuses = statuses
        self.outbox = outbox  # its round watch tells the inbox which tasks are stale
        self._state = state
        self._scratch = scratch
        self._work_dir = work_dir  # each task's scratch directory is made in it
        self._trainer = trainer
        self._suffix = model_suffix
        self._observer = observer
        self.outcomes: deque[TaskOutcome] = deque(maxlen=OUTCOME_HISTORY)

    async def handle(self, task: Task) -> TaskOutcome:
        with log_scope(session_id=task.session_id, round_id=task.round_id, model_id=task.model_id):
            self._observer.task_started(task)
            ok = False
            try:
                outcome = await self._handle(task)
                ok = outcome.ok
                return outcome
            finally:  # also when the task is cut short (a refused token, the client stopping)
                self._observer.task_finished(task, ok)

    async def _handle(self, task: Task) -> TaskOutcome:
        self._statuses.report(TaskStatus(Stage.RECEIVED, task))
        if task.problem:
            # Served as {} this would train on a config nobody sent; fail it where the combiner sees.
            outcome = self._report_failure(task, f"refused the request: {task.problem}")
            self.outcomes.append(outcome)
            await self._statuses.all_sent()
            return outcome
        self._state.begin(task.kind)
        scratch: Path | None = None
        # The user's code finds this task's ids (for log_metric) through the context variable.
        context = CURRENT_TASK.set(TaskContext(task, self._calls.send_metric, self._calls.send_attributes))
        try:
            scratch = self._scratch.make(self._work_dir, f"{task.kind.value}-")
            delivery = await self._handlers[task.kind](task, TaskWork(scratch, self._trainer, self._suffix))
            outcome = TaskOutcome(task, ok=True, delivery=delivery)
        except AuthError:
            raise
        except FedClientError as exc:
            outcome = self._report_failure(task, str(exc))
        except Exception as exc:  # a bug or an OS error: report it, keep serving
            log.exception("unexpected error in %s task for model %s", task.kind.value, task.model_id)
            outcome = self._report_failure(task, f"{type(exc).__name__}: {exc}")
        finally:
            CURRENT_TASK.reset(context)
            self._state.finish()
            if scratch is not None:  # a big model's files: removed off the event loop
                await asyncio.to_thread(self._scratch.remove, scratch)
        self.outcomes.append(outcome)
        await self._statuses.all_sent()
        return outcome

    def _report_failure(self, task: Task, error: str) -> TaskOutcome:
        log.error("%s", failure_message(task, error))
        # What the combiner (and everyone who reads its logs) sees: no secret of ours in it,
        # whatever the package's code printed into an error message.
        self._statuses.report(TaskStatus(Stage.FAILED, task, error=redact(error)))
        return TaskOutcome(task, ok=False, error=error)
