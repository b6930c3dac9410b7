"""FEDn 0.33's wording: status texts, the meta JSON layouts and the TaskRequest config, both ways.

The domain reports typed events and outcomes (``domain.model.TaskStatus``,
``domain.results``); this module spells them the way FEDn's combiner and its stock
client do, field name for field name, and reads a TaskRequest's JSON config into a
typed ``Task``. Pure and protobuf-free: ``conversions`` puts the result into messages,
and tests read the wire wording from here.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...domain.model import ModelUpdate, Stage, Task, TaskKind, TaskStatus, model_id_problem
from ...domain.redaction import redact
from ...domain.results import (
    BackwardOutcome,
    ForwardOutcome,
    TaskResult,
    TrainingOutcome,
    ValidationOutcome,
)

RECEIVED = "Received request from combiner."
UPDATE_DONE = "Model update completed."
VALIDATION_DONE = "Model validation completed."
PREDICTION_DONE = "Model prediction completed."
FORWARD_DONE = "Forward pass completed."
BACKWARD_DONE = "Backward pass completed. Status: finished_backward"
DONE_TEXT: dict[TaskKind, str] = {
    TaskKind.TRAIN: UPDATE_DONE,
    TaskKind.VALIDATE: VALIDATION_DONE,
    TaskKind.PREDICT: PREDICTION_DONE,
    TaskKind.FORWARD: FORWARD_DONE,
    TaskKind.BACKWARD: BACKWARD_DONE,
}

MAX_TASK_DATA_CHARS = 1024 * 1024


class StatusLevel(enum.Enum):
    INFO = "info"
    DEBUG = "debug"
    WARNING = "warning"
    ERROR = "error"
    AUDIT = "audit"


@dataclass(frozen=True)
class StatusLine:
    """A Status message's content: what FEDn's client would have sent for the event."""

    text: str
    level: StatusLevel
    kind: TaskKind | None  # the StatusType (None: LOG)
    session_id: str = ""
    correlation_id: str = ""
    data: str = ""


# ------------------------------------------------------------------ statuses --


def status_line(status: TaskStatus) -> StatusLine:
    """The status FEDn's client sends for ``status``; no secret of ours in its text or data."""
    task = status.task
    if status.stage is Stage.RECEIVED:
        text, level, kind, data = RECEIVED, StatusLevel.AUDIT, task.kind, task_json(task)
    elif status.stage is Stage.STARTED:
        text, level, kind, data = started_text(task), StatusLevel.INFO, task.kind, ""
    elif status.stage is Stage.FAILED:
        text, level, kind, data = status.failure, StatusLevel.ERROR, task.kind, ""
    else:
        text, level, data = DONE_TEXT[task.kind], StatusLevel.AUDIT, done_data(status)
        # A forward pass is filed as a model update, as FEDn's client does.
        kind = TaskKind.TRAIN if task.kind is TaskKind.FORWARD else task.kind
    # What the combiner (and everyone who reads its logs) sees: no secret of ours in it,
    # whatever the package's code printed into an error message or its metadata.
    return StatusLine(redact(text), level, kind, task.session_id, task.correlation_id, redact(data))


def started_text(task: Task) -> str:
    if task.kind is TaskKind.VALIDATE:
        return f"Processing validate request for model_id {task.model_id}"
    if task.kind is TaskKind.BACKWARD:
        return f"\t Starting processing of backward request for gradient_id {task.model_id}"
    what = "forward" if task.kind is TaskKind.FORWARD else "training"
    return f"\t Starting processing of {what} request for model_id {task.model_id}"


def done_data(status: TaskStatus) -> str:
    """The JSON a completion status carries: the update and its meta, or the metrics; else nothing."""
    task, result = status.task, status.result
    if isinstance(result, (TrainingOutcome, ForwardOutcome)):
        meta = outcome_meta(result, task.data)
        return json.dumps({"model_id": task.model_id, "model_update_id": status.result_id, "meta": meta})
    if isinstance(result, ValidationOutcome):
        return json.dumps({"model_id": task.model_id, "metrics": result.metrics})
    return ""


def task_json(task: Task) -> str:
    """The request, as the RECEIVED status carries it."""
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


# ---------------------------------------------------------------------- meta --


def outcome_meta(outcome: TaskResult, task_data: str) -> dict[str, Any]:
    """A result's meta as the stock client lays it out (key order included); ``task_data`` is echoed."""
    if isinstance(outcome, TrainingOutcome):
        meta: dict[str, Any] = {
            "training_metadata": outcome.metadata,
            "exec_training": outcome.execute,
            "fetch_model": outcome.fetch,
            # The combiner reads round_id from this raw request string (JSON in JSON).
            "config": task_data,
        }
        if outcome.upload is not None:
            meta["upload_model"] = outcome.upload
            meta["processing_time"] = outcome.processing
        return meta
    if isinstance(outcome, ForwardOutcome):
        meta = {"exec_training": outcome.execute, "training_metadata": outcome.metadata, "config": task_data}
        if outcome.upload is not None:
            meta["upload_model"] = outcome.upload
            meta["processing_time"] = outcome.processing
        return meta
    if isinstance(outcome, BackwardOutcome):
        return {
            "exec_training": outcome.execute,
            "processing_time": outcome.execute,
            "fetch_model": outcome.fetch,
            "config": task_data,
            "status": "success",
        }
    raise TypeError(f"no meta for {type(outcome).__name__}")


def update_meta_json(update: ModelUpdate) -> str:
    return json.dumps(outcome_meta(update.outcome, update.task_data))


def training_outcome_of(meta: Mapping[str, Any]) -> tuple[TrainingOutcome, str]:
    """A training meta in the layout above (before its upload), read back: the outcome, the echoed config."""
    metadata = meta.get("training_metadata", {})
    if not isinstance(metadata, Mapping):
        raise ValueError(f"training_metadata is not an object: {metadata!r}")
    fetch, execute = float(meta.get("fetch_model", 0.0)), float(meta.get("exec_training", 0.0))
    return TrainingOutcome(dict(metadata), fetch, execute), str(meta.get("config", ""))


# ------------------------------------------------------------------- requests --


def task_of(
    kind: TaskKind,
    model_id: str,
    session_id: str = "",
    correlation_id: str = "",
    data: str = "",
    sender_name: str = "",
    type_name: str = "",
) -> Task:
    """A TaskRequest's fields as a typed Task: its JSON config read here, once."""
    config = parse_task_data(data)
    settings = config.get("client_settings", {})
    return Task(
        kind=kind,
        model_id=model_id,
        session_id=session_id,
        correlation_id=correlation_id,
        data=data,
        sender_name=sender_name,
        round_id=str(config.get("round_id", "")),
        round_timeout=_round_timeout(config.get("round_timeout", "")),
        client_settings=settings if isinstance(settings, Mapping) else {},
        sl_inference=_flag(config.get("is_sl_inference", False)),
        request_problem=data_problem(data),
        type_name=type_name,
    )


def _round_timeout(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _flag(value: object) -> bool:
    """The server sends a flag as a JSON bool or as the text "True"/"False"."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def data_problem(data: str) -> str | None:
    """What is wrong with a TaskRequest's ``data``, or None when it is usable."""
    if len(data) > MAX_TASK_DATA_CHARS:
        return f"the request data is larger than {MAX_TASK_DATA_CHARS} characters"
    if not data.strip():
        return None
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return f"the request data is not JSON: {data[:60]!r}"
    if not isinstance(parsed, dict):
        return f"the request data must be a JSON object, got {type(parsed).__name__}"
    return None


def task_problem(model_id: str, data: str) -> str | None:
    """What is wrong with a TaskRequest's model id or ``data``, or None when it is usable."""
    return model_id_problem(model_id) or data_problem(data)


def parse_task_data(data: str) -> dict[str, Any]:
    """Parse a TaskRequest's ``data``: a JSON object, or nothing at all.

    FEDn sends an empty string for validation and a JSON object for training;
    anything else is kept raw and reads as an empty config.
    """
    if not data.strip() or len(data) > MAX_TASK_DATA_CHARS:
        return {}
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}
