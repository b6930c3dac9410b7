"""Running one task: download the model, run the user's code, send the result back.

A task never takes the client down: whatever goes wrong is reported to the
combiner as a FAILED status and the client moves on to the next task. Only a
refused token (AuthError) and cancellation (the client is stopping) get through.

What the runner reports is typed (``TaskStatus`` events, ``domain.results`` outcomes);
the transport's conversions phrase them for the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AuthError, FedClientError, TaskFailed
from .links import LinkHolder
from .model import (
    AttributeReport,
    BackwardCompletion,
    MetricReport,
    ModelUpdate,
    Prediction,
    Stage,
    Task,
    TaskKind,
    TaskStatus,
    failure_message,
)
from .observe import NULL_OBSERVER, Observer, log_scope
from .outbox import DEFAULT_MAX_AGE, DELIVERY_RETRY, Delivery, Outbox, OutboxEntry, ResultKind
from .ports import Clock, Ids, Random, Scratch, Trainer
from .redaction import redact
from .results import (
    BackwardOutcome,
    ForwardOutcome,
    PredictionOutcome,
    TrainingOutcome,
    ValidationOutcome,
)
from .retry import RetryConfig, call_with_retry
from .rounds import round_timeout
from .state import StateMachine
from .task_context import CURRENT_TASK, TaskContext

log = logging.getLogger("fedclient.tasks")

# The plan's delivery_retry has no attempt limit: the outbox's round rules end its retries. A task's
# own calls to the combiner have no such rule (model downloads, and what is sent without the outbox:
# predictions, split-learning embeddings and backward completions, metrics and attributes), so they
# use its backoff but give up after this many tries, each waiting for a connection first, and the
# task is reported failed: a FAILED status to the combiner and a log line, never silently.
DIRECT_ATTEMPTS = 8
# How many task outcomes are kept in memory (the newest).
OUTCOME_HISTORY = 64


@dataclass
class TaskOutcome:
    task: Task
    ok: bool
    error: str = ""
    delivery: Delivery | None = None  # for results that go through the outbox


class TaskRunner:
    """Executes tasks one at a time over whatever combiner link the holder has now."""

    def __init__(
        self,
        links: LinkHolder,
        trainer: Trainer,
        work_dir: Path,
        state: StateMachine,
        clock: Clock,
        *,
        outbox: Outbox,
        scratch: Scratch,
        ids: Ids,
        random: Random,
        delivery_retry: RetryConfig = DELIVERY_RETRY,
        model_suffix: str = ".npz",
        observer: Observer = NULL_OBSERVER,
        client_id: Callable[[], str] = lambda: "",
        result_max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        self._links = links
        self._trainer = trainer
        self._work_dir = work_dir  # each task's scratch directory is made in it
        self._scratch = scratch
        self._state = state
        self._retry = (
            delivery_retry
            if delivery_retry.max_attempts is not None
            else dataclasses.replace(delivery_retry, max_attempts=DIRECT_ATTEMPTS)
        )
        self._clock = clock
        self._ids = ids
        self._random = random
        self._suffix = model_suffix
        self._observer = observer
        self._client_id = client_id
        self._max_age = result_max_age
        self.outbox = outbox
        self.outcomes: deque[TaskOutcome] = deque(maxlen=OUTCOME_HISTORY)
        self._delivery: Delivery | None = None
        self._statuses: list[asyncio.Task[None]] = []  # status reports in flight, oldest first
        self._handlers: dict[TaskKind, Callable[[Task, Path], Any]] = {
            TaskKind.TRAIN: self._train,
            TaskKind.VALIDATE: self._validate,
            TaskKind.PREDICT: self._predict,
            TaskKind.FORWARD: self._forward,
            TaskKind.BACKWARD: self._backward,
            TaskKind.UNSUPPORTED: self._unsupported,
        }

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
        await self._status(TaskStatus(Stage.RECEIVED, task))
        if task.problem:
            # Served as {} this would train on a config nobody sent; fail it where the combiner sees.
            outcome = await self._report_failure(task, f"refused the request: {task.problem}")
            self.outcomes.append(outcome)
            await self._statuses_sent()
            return outcome
        self._state.begin(task.kind)
        self._delivery = None
        scratch: Path | None = None
        # The user's code finds this task's ids (for log_metric) through the context variable.
        context = CURRENT_TASK.set(TaskContext(task, self.send_metric, self.send_attributes))
        try:
            scratch = self._scratch.make(self._work_dir, f"{task.kind.value}-")
            await self._handlers[task.kind](task, scratch)
            outcome = TaskOutcome(task, ok=True, delivery=self._delivery)
        except AuthError:
            raise
        except FedClientError as exc:
            outcome = await self._report_failure(task, str(exc))
        except Exception as exc:  # a bug or an OS error: report it, keep serving
            log.exception("unexpected error in %s task for model %s", task.kind.value, task.model_id)
            outcome = await self._report_failure(task, f"{type(exc).__name__}: {exc}")
        finally:
            CURRENT_TASK.reset(context)
            self._state.finish()
            if scratch is not None:  # a big model's files: removed off the event loop
                await asyncio.to_thread(self._scratch.remove, scratch)
        self.outcomes.append(outcome)
        await self._statuses_sent()
        return outcome

    # ------------------------------------------------------------------ train --

    async def _train(self, task: Task, scratch: Path) -> None:
        if not task.round_id:
            log.warning("training request for model %s has no round_id in its config", task.model_id)
        in_model, out_model = scratch / f"in{self._suffix}", scratch / f"out{self._suffix}"
        t0 = self._clock.monotonic()
        await self._download(task.model_id, in_model)
        fetch = self._clock.monotonic() - t0
        await self._status(TaskStatus(Stage.STARTED, task))
        t1 = self._clock.monotonic()
        metadata = await self._trainer.train(in_model, out_model, dict(task.client_settings))
        outcome = TrainingOutcome(metadata, fetch=fetch, execute=self._clock.monotonic() - t1)
        entry = await self.outbox.add(self._entry(task, ResultKind.UPDATE, outcome), out_model)
        self._delivery = await self.outbox.deliver(entry.key)
        if self._delivery is not Delivery.DELIVERED:
            self._log_undelivered(task, self._delivery)
            return
        update_id = self.outbox.result_id(entry.key)
        log.info(
            "model update %s for round %s sent (%s examples)",
            update_id,
            task.round_id or "?",
            metadata.get("num_examples"),
        )
        await self._status(TaskStatus(Stage.DONE, task, outcome, update_id))

    def _entry(
        self, task: Task, kind: ResultKind, payload: TrainingOutcome | ValidationOutcome
    ) -> OutboxEntry:
        """A finished result, with the wall-clock time after which its round no longer takes it."""
        now = self._clock.time()
        opened = self.outbox.watch.opened_at(task)
        timeout = round_timeout(task) if kind is ResultKind.UPDATE else None
        expires = (opened if opened is not None else now) + timeout if timeout else now + self._max_age
        return OutboxEntry(
            key=self._ids.new_id().replace("-", ""),  # a plain file name (a UUID's 32 hex digits)
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

    def _log_undelivered(self, task: Task, delivery: Delivery) -> None:
        if delivery is Delivery.PENDING:
            log.warning(
                "%s result for model %s waits in the outbox for the connection to come back",
                task.kind.value,
                task.model_id,
            )

    async def _deliver_update(
        self, task: Task, update_id: str, out_file: Path, outcome: ForwardOutcome, t0: float
    ) -> ForwardOutcome:
        """Upload ``out_file`` as ``update_id`` and report it as a ModelUpdate; return the timed outcome.

        Used for split-learning embeddings, which only their own forward pass can use: they
        are sent directly, not kept in the outbox (training updates are, see ``_train``).
        """

        async def deliver() -> ForwardOutcome:
            # Each try starts over from the file: a half-sent upload is never resumed.
            link = await self._links.wait()
            t2 = self._clock.monotonic()
            await link.upload(update_id, out_file)
            now = self._clock.monotonic()
            full = dataclasses.replace(outcome, upload=now - t2, processing=now - t0)
            await link.send_update(
                ModelUpdate(
                    task.model_id,
                    update_id,
                    full,
                    task.sender_name,
                    task.correlation_id,
                    task.session_id,
                    task_data=task.data,
                )
            )
            return full

        result: ForwardOutcome = await call_with_retry(
            deliver,
            self._retry,
            self._clock.sleep,
            f"sending update {update_id}",
            now=self._clock.monotonic,
            rand=self._random.uniform,
        )
        return result

    # ---------------------------------------------------------- split learning --

    async def _forward(self, task: Task, scratch: Path) -> None:
        """Run ``forward``, upload the embeddings, report them as a ModelUpdate (no model download)."""
        await self._status(TaskStatus(Stage.STARTED, task))
        out = scratch / "embeddings"
        t0 = self._clock.monotonic()
        metadata = await self._trainer.forward(self._client_id(), out, task.sl_inference)
        update_id = self._ids.new_id()
        outcome = ForwardOutcome(metadata, execute=self._clock.monotonic() - t0)
        full = await self._deliver_update(task, update_id, out, outcome, t0)
        log.info("embeddings %s for model %s sent", update_id, task.model_id)
        await self._status(TaskStatus(Stage.DONE, task, full, update_id))

    async def _backward(self, task: Task, scratch: Path) -> None:
        """Download the gradients (``model_id`` is their id), run ``backward``, report completion."""
        gradients = scratch / "gradients"
        t0 = self._clock.monotonic()
        await self._download(task.model_id, gradients)
        fetch = self._clock.monotonic() - t0
        await self._status(TaskStatus(Stage.STARTED, task))
        t1 = self._clock.monotonic()
        await self._trainer.backward(gradients, self._client_id())
        outcome = BackwardOutcome(fetch=fetch, execute=self._clock.monotonic() - t1)
        # Only a backward pass that succeeded is reported complete; a failure is a FAILED status.
        completion = BackwardCompletion(
            task.model_id,
            outcome,
            task.sender_name,
            task.correlation_id,
            task.session_id,
            task_data=task.data,
        )
        await self._send(
            lambda link: link.send_backward_completion(completion), "sending backward completion"
        )
        await self._status(TaskStatus(Stage.DONE, task, outcome))

    async def _unsupported(self, task: Task, scratch: Path) -> None:
        raise TaskFailed(f"this client cannot run {task.type_name or 'this kind of'} requests")

    # --------------------------------------------------------------- validate --

    async def _validate(self, task: Task, scratch: Path) -> None:
        await self._status(TaskStatus(Stage.STARTED, task))
        in_model = scratch / f"in{self._suffix}"
        await self._download(task.model_id, in_model)
        # No suffix on the JSON outputs either: the stock client names them that way too.
        outcome = ValidationOutcome(await self._trainer.validate(in_model, scratch / "metrics"))
        entry = await self.outbox.add(self._entry(task, ResultKind.VALIDATION, outcome))
        self._delivery = await self.outbox.deliver(entry.key)
        if self._delivery is not Delivery.DELIVERED:
            self._log_undelivered(task, self._delivery)
            return
        await self._status(TaskStatus(Stage.DONE, task, outcome))

    # ---------------------------------------------------------------- predict --

    async def _predict(self, task: Task, scratch: Path) -> None:
        in_model = scratch / f"in{self._suffix}"
        await self._download(task.model_id, in_model)
        output = await self._trainer.predict(in_model, scratch / "prediction")
        prediction = Prediction(task.model_id, output, task.sender_name, task.correlation_id, task.session_id)
        await self._send(lambda link: link.send_prediction(prediction), "sending prediction")
        await self._status(TaskStatus(Stage.DONE, task, PredictionOutcome(output)))

    # ---------------------------------------------------------- user reports --

    async def send_metric(self, report: MetricReport) -> None:
        await self._send(lambda link: link.send_metric(report), f"sending metrics (step {report.step})")

    async def send_attributes(self, report: AttributeReport) -> None:
        await self._send(lambda link: link.send_attributes(report), "sending attributes")

    # ---------------------------------------------------------------- helpers --

    async def _download(self, model_id: str, dest: Path) -> None:
        await self._send(lambda link: link.download(model_id, dest), f"downloading model {model_id}")

    async def _send(self, call: Callable[[Any], Any], what: str) -> None:
        async def attempt() -> None:
            await call(await self._links.wait())

        await call_with_retry(
            attempt,
            self._retry,
            self._clock.sleep,
            what,
            now=self._clock.monotonic,
            rand=self._random.uniform,
        )

    async def _report_failure(self, task: Task, error: str) -> TaskOutcome:
        log.error("%s", failure_message(task, error))
        # What the combiner (and everyone who reads its logs) sees: no secret of ours in it,
        # whatever the package's code printed into an error message.
        await self._status(TaskStatus(Stage.FAILED, task, error=redact(error)))
        return TaskOutcome(task, ok=False, error=error)

    async def _status(self, report: TaskStatus) -> None:
        """Queue a status report; the task goes on while it is sent (in order, one after another).

        Status lines are informative: losing one (no connection right now) never fails a
        task. Waiting for each one held every task up by a combiner round trip (about
        half of a 1 MiB task's overhead against FEDn 0.33, docs/PERFORMANCE.md), so they
        are sent in the background and ``handle()`` waits for them only at its end.
        """
        previous = self._statuses[-1] if self._statuses else None
        self._statuses.append(asyncio.ensure_future(self._send_status(previous, report)))

    async def _send_status(self, previous: asyncio.Task[None] | None, report: TaskStatus) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # keep the order; its outcome is collected by _statuses_sent
        link = self._links.current()
        if link is None:
            log.warning("not connected; status %r not sent", report.describe())
            return
        try:
            await link.send_status(report)
        except AuthError:
            raise
        except FedClientError as exc:
            log.warning("could not send status %r: %s", report.describe(), exc)

    async def _statuses_sent(self) -> None:
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
                raise error  # only AuthError escapes _send_status
