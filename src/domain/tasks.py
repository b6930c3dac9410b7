"""Running one task: download the model, run the user's code, send the result back.

A task never takes the client down: whatever goes wrong is reported to the
combiner as an ERROR status and the client moves on to the next task.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.errors import AuthError, FedClientError, TransientError
from domain.model import (
    ModelUpdate,
    Prediction,
    StatusLevel,
    StatusReport,
    Task,
    TaskKind,
    Validation,
)
from domain.ports import Clock, CombinerLink, Trainer
from domain.retry import RetryConfig, compute_backoff, may_retry
from domain.state import StateMachine

log = logging.getLogger("fedclient.tasks")

# A finished result is retried (re-uploaded from its file) this often before the task fails.
DELIVERY_RETRY = RetryConfig(initial=1.0, maximum=10.0, max_attempts=5)

RECEIVED = "Received request from combiner."
UPDATE_DONE = "Model update completed."
VALIDATION_DONE = "Model validation completed."
PREDICTION_DONE = "Model prediction completed."


@dataclass
class TaskOutcome:
    task: Task
    ok: bool
    error: str = ""


class TaskRunner:
    """Executes tasks one at a time against the current combiner link.

    ``link`` is a callable returning the link in use right now, so a task that
    outlives a reconnect sends its result over the new connection.
    """

    def __init__(
        self,
        link: Callable[[], CombinerLink],
        trainer: Trainer,
        work_dir: Path,
        state: StateMachine,
        clock: Clock,
        delivery_retry: RetryConfig = DELIVERY_RETRY,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        model_suffix: str = ".npz",
    ) -> None:
        self._link = link
        self._trainer = trainer
        self._work_dir = work_dir
        self._state = state
        self._retry = delivery_retry
        self._clock = clock
        self._new_id = new_id
        self._suffix = model_suffix
        self.outcomes: list[TaskOutcome] = []

    async def handle(self, task: Task) -> TaskOutcome:
        await self._status(
            StatusReport(
                RECEIVED,
                StatusLevel.AUDIT,
                task.kind,
                task.session_id,
                task.correlation_id,
                data=_task_json(task),
            )
        )
        self._work_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{task.kind.value}-", dir=self._work_dir))
        self._state.begin(task.kind)
        try:
            if task.kind is TaskKind.TRAIN:
                await self._train(task, scratch)
            elif task.kind is TaskKind.VALIDATE:
                await self._validate(task, scratch)
            else:
                await self._predict(task, scratch)
            outcome = TaskOutcome(task, ok=True)
        except AuthError:
            raise
        except FedClientError as exc:
            outcome = await self._report_failure(task, exc)
        finally:
            self._state.finish()
            shutil.rmtree(scratch, ignore_errors=True)
        self.outcomes.append(outcome)
        return outcome

    async def _train(self, task: Task, scratch: Path) -> None:
        if not task.round_id:
            log.warning("training request for model %s has no round_id in its config", task.model_id)
        in_model = scratch / f"in{self._suffix}"
        out_model = scratch / f"out{self._suffix}"
        t0 = self._clock.monotonic()
        await self._link().download(task.model_id, in_model)
        fetch = self._clock.monotonic() - t0
        await self._status(
            StatusReport(
                f"\t Starting processing of training request for model_id {task.model_id}",
                StatusLevel.INFO,
                TaskKind.TRAIN,
                task.session_id,
                task.correlation_id,
            )
        )
        t1 = self._clock.monotonic()
        metadata = await self._trainer.train(in_model, out_model, dict(task.client_settings))
        exec_training = self._clock.monotonic() - t1
        update_id = self._new_id()
        meta: dict[str, Any] = {
            "training_metadata": metadata,
            "exec_training": exec_training,
            "fetch_model": fetch,
            # The combiner reads round_id from this raw request string (JSON in JSON).
            "config": task.data,
        }
        meta = await self._deliver_update(task, update_id, out_model, meta, started=t0)
        log.info(
            "model update %s for round %s sent (%s examples)",
            update_id,
            task.round_id or "?",
            metadata.get("num_examples"),
        )
        await self._status(
            StatusReport(
                UPDATE_DONE,
                StatusLevel.AUDIT,
                TaskKind.TRAIN,
                task.session_id,
                task.correlation_id,
                data=json.dumps({"model_id": task.model_id, "model_update_id": update_id, "meta": meta}),
            )
        )

    async def _deliver_update(
        self, task: Task, update_id: str, out_model: Path, meta: dict[str, Any], started: float
    ) -> dict[str, Any]:
        """Upload the trained model and report it; on a dropped connection, start over from the file."""
        attempt = 0
        while True:
            attempt += 1
            try:
                t0 = self._clock.monotonic()
                await self._link().upload(update_id, out_model)
                now = self._clock.monotonic()
                full = {**meta, "upload_model": now - t0, "processing_time": now - started}
                await self._link().send_update(
                    ModelUpdate(
                        task.model_id, update_id, full, task.sender_name, task.correlation_id, task.session_id
                    )
                )
                return full
            except TransientError as exc:
                if not may_retry(attempt, self._retry):
                    raise
                delay = compute_backoff(attempt, self._retry)
                log.warning("sending update %s failed (%s); retrying in %.1f s", update_id, exc, delay)
                await self._clock.sleep(delay)

    async def _validate(self, task: Task, scratch: Path) -> None:
        await self._status(
            StatusReport(
                f"Processing validate request for model_id {task.model_id}",
                StatusLevel.INFO,
                TaskKind.VALIDATE,
                task.session_id,
                task.correlation_id,
            )
        )
        in_model = scratch / f"in{self._suffix}"
        await self._link().download(task.model_id, in_model)
        metrics = await self._trainer.validate(in_model, scratch / "metrics.json")
        validation = Validation(
            task.model_id, metrics, task.sender_name, task.correlation_id, task.session_id
        )
        await self._with_retry(lambda: self._link().send_validation(validation), "validation")
        await self._status(
            StatusReport(
                VALIDATION_DONE,
                StatusLevel.AUDIT,
                TaskKind.VALIDATE,
                task.session_id,
                task.correlation_id,
                data=json.dumps({"model_id": task.model_id, "metrics": metrics}),
            )
        )

    async def _predict(self, task: Task, scratch: Path) -> None:
        in_model = scratch / f"in{self._suffix}"
        await self._link().download(task.model_id, in_model)
        output = await self._trainer.predict(in_model, scratch / "prediction.json")
        prediction = Prediction(task.model_id, output, task.sender_name, task.correlation_id, task.session_id)
        await self._with_retry(lambda: self._link().send_prediction(prediction), "prediction")
        await self._status(
            StatusReport(
                PREDICTION_DONE, StatusLevel.AUDIT, TaskKind.PREDICT, task.session_id, task.correlation_id
            )
        )

    async def _with_retry(self, send: Callable[[], Any], what: str) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await send()
                return
            except TransientError as exc:
                if not may_retry(attempt, self._retry):
                    raise
                delay = compute_backoff(attempt, self._retry)
                log.warning("sending %s failed (%s); retrying in %.1f s", what, exc, delay)
                await self._clock.sleep(delay)

    async def _report_failure(self, task: Task, exc: Exception) -> TaskOutcome:
        message = f"{task.kind.value} task for model {task.model_id} failed: {exc}"
        log.error("%s", message)
        try:
            await self._link().send_status(
                StatusReport(message, StatusLevel.ERROR, task.kind, task.session_id, task.correlation_id)
            )
        except FedClientError as send_exc:
            log.warning("could not report the failure to the combiner: %s", send_exc)
        return TaskOutcome(task, ok=False, error=str(exc))

    async def _status(self, report: StatusReport) -> None:
        """Status lines are informative: losing one must never fail a task."""
        try:
            await self._link().send_status(report)
        except AuthError:
            raise
        except FedClientError as exc:
            log.warning("could not send status %r: %s", report.text, exc)


def _task_json(task: Task) -> str:
    return json.dumps(
        {
            "type": task.kind.value,
            "model_id": task.model_id,
            "session_id": task.session_id,
            "correlation_id": task.correlation_id,
            "sender": task.sender_name,
            "data": task.data,
        }
    )
