"""What each kind of task does: training, validation and prediction, split learning.

Each handler gets the task and its ``TaskWork`` (scratch directory, trainer) and returns
what became of a result that went through the outbox (None for results sent directly).
Whatever goes wrong is raised: the runner (``domain.tasks``) reports it as a failure.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import TaskFailed
from .model import BackwardCompletion, ModelUpdate, Prediction, Stage, Task, TaskStatus
from .outbox import Delivery, ResultKind
from .ports import CombinerLink, Ids, Trainer
from .results import BackwardOutcome, ForwardOutcome, PredictionOutcome, TrainingOutcome, ValidationOutcome
from .task_calls import StatusReporter, TaskCalls
from .task_results import ResultFiler

log = logging.getLogger("fedclient.tasks")


@dataclass(frozen=True)
class TaskWork:
    """What one task works with: its scratch directory, and the trainer with its model file suffix."""

    scratch: Path
    trainer: Trainer
    model_suffix: str = ".npz"

    def model_file(self, name: str) -> Path:
        return self.scratch / f"{name}{self.model_suffix}"


# A task kind's handler: what became of an outbox result (None: nothing went through the outbox).
TaskHandler = Callable[[Task, TaskWork], Awaitable[Delivery | None]]


@dataclass(frozen=True)
class Training:
    calls: TaskCalls
    statuses: StatusReporter
    results: ResultFiler

    async def train(self, task: Task, work: TaskWork) -> Delivery:
        if not task.round_id:
            log.warning("training request for model %s has no round_id in its config", task.model_id)
        in_model, out_model = work.model_file("in"), work.model_file("out")
        clock = self.calls.clock
        t0 = clock.monotonic()
        await self.calls.download(task.model_id, in_model)
        fetch = clock.monotonic() - t0
        self.statuses.report(TaskStatus(Stage.STARTED, task))
        t1 = clock.monotonic()
        metadata = await work.trainer.train(in_model, out_model, dict(task.client_settings))
        outcome = TrainingOutcome(metadata, fetch=fetch, execute=clock.monotonic() - t1)
        delivery, update_id = await self.results.deliver(task, ResultKind.UPDATE, outcome, out_model)
        if delivery is not Delivery.DELIVERED:
            return delivery
        log.info(
            "model update %s for round %s sent (%s examples)",
            update_id,
            task.round_id or "?",
            metadata.get("num_examples"),
        )
        self.statuses.report(TaskStatus(Stage.DONE, task, outcome, update_id))
        return delivery


@dataclass(frozen=True)
class Evaluation:
    """Validation (its metrics go through the outbox) and prediction (sent directly)."""

    calls: TaskCalls
    statuses: StatusReporter
    results: ResultFiler

    async def validate(self, task: Task, work: TaskWork) -> Delivery:
        self.statuses.report(TaskStatus(Stage.STARTED, task))
        in_model = work.model_file("in")
        await self.calls.download(task.model_id, in_model)
        # No suffix on the JSON outputs either: the stock client names them that way too.
        outcome = ValidationOutcome(await work.trainer.validate(in_model, work.scratch / "metrics"))
        delivery, _ = await self.results.deliver(task, ResultKind.VALIDATION, outcome)
        if delivery is Delivery.DELIVERED:
            self.statuses.report(TaskStatus(Stage.DONE, task, outcome))
        return delivery

    async def predict(self, task: Task, work: TaskWork) -> None:
        in_model = work.model_file("in")
        await self.calls.download(task.model_id, in_model)
        output = await work.trainer.predict(in_model, work.scratch / "prediction")
        prediction = Prediction(task.model_id, output, task.sender_name, task.correlation_id, task.session_id)
        await self.calls.send(lambda link: link.send_prediction(prediction), "sending prediction")
        self.statuses.report(TaskStatus(Stage.DONE, task, PredictionOutcome(output)))


@dataclass(frozen=True)
class SplitLearning:
    """The forward pass (embeddings sent as a model update) and the backward pass (gradients in)."""

    calls: TaskCalls
    statuses: StatusReporter
    ids: Ids  # each embedding's update id
    client_id: Callable[[], str]  # the id the client joins as now (forward and backward take it)

    async def forward(self, task: Task, work: TaskWork) -> None:
        """Run ``forward``, upload the embeddings, report them as a ModelUpdate (no model download)."""
        self.statuses.report(TaskStatus(Stage.STARTED, task))
        out = work.scratch / "embeddings"
        clock = self.calls.clock
        t0 = clock.monotonic()
        metadata = await work.trainer.forward(self.client_id(), out, task.sl_inference)
        update_id = self.ids.new_id()
        outcome = ForwardOutcome(metadata, execute=clock.monotonic() - t0)
        full = await self._deliver_update(task, update_id, out, outcome, t0)
        log.info("embeddings %s for model %s sent", update_id, task.model_id)
        self.statuses.report(TaskStatus(Stage.DONE, task, full, update_id))

    async def _deliver_update(
        self, task: Task, update_id: str, out_file: Path, outcome: ForwardOutcome, t0: float
    ) -> ForwardOutcome:
        """Upload ``out_file`` as ``update_id`` and report it as a ModelUpdate; return the timed outcome.

        Embeddings are of use only to their own forward pass: they are sent directly, not
        kept in the outbox (training updates are, see ``Training.train``).
        """
        clock = self.calls.clock

        async def deliver(link: CombinerLink) -> ForwardOutcome:
            # Each try starts over from the file: a half-sent upload is never resumed.
            t2 = clock.monotonic()
            await link.upload(update_id, out_file)
            now = clock.monotonic()
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

        return await self.calls.retried(deliver, f"sending update {update_id}")

    async def backward(self, task: Task, work: TaskWork) -> None:
        """Download the gradients (``model_id`` is their id), run ``backward``, report completion."""
        gradients = work.scratch / "gradients"
        clock = self.calls.clock
        t0 = clock.monotonic()
        await self.calls.download(task.model_id, gradients)
        fetch = clock.monotonic() - t0
        self.statuses.report(TaskStatus(Stage.STARTED, task))
        t1 = clock.monotonic()
        await work.trainer.backward(gradients, self.client_id())
        outcome = BackwardOutcome(fetch=fetch, execute=clock.monotonic() - t1)
        # Only a backward pass that succeeded is reported complete; a failure is a FAILED status.
        completion = BackwardCompletion(
            task.model_id,
            outcome,
            task.sender_name,
            task.correlation_id,
            task.session_id,
            task_data=task.data,
        )
        await self.calls.send(
            lambda link: link.send_backward_completion(completion), "sending backward completion"
        )
        self.statuses.report(TaskStatus(Stage.DONE, task, outcome))


async def unsupported(task: Task, work: TaskWork) -> None:
    raise TaskFailed(f"this client cannot run {task.type_name or 'this kind of'} requests")
