"""Pure mapping between FEDn 0.33 protobuf messages and our domain values.

This is the only place that knows how a domain value is spelled on the wire
(docs/PROTOCOL.md §3.4-§3.13); the wording inside them (status texts, meta JSON,
the request's config) is ``vocabulary``'s. Everything is a plain function so it can be tested
without a network. Where FEDn omits a field we still fill it when it costs the
combiner nothing and helps it (``sender.client_id`` everywhere, correlation ids):
one explicit client id is what the combiner keys on (docs/PROTOCOL.md §4).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import UInt32Value

from ...domain.model import (
    AttributeReport,
    BackwardCompletion,
    Identity,
    MetricReport,
    ModelUpdate,
    Prediction,
    ResourceUsage,
    Task,
    TaskKind,
    TaskStatus,
    Validation,
)
from .generated import fedn_pb2 as pb
from .vocabulary import StatusLevel, outcome_meta, status_line, task_of, update_meta_json

_KIND_BY_TYPE: dict[int, TaskKind] = {
    pb.MODEL_UPDATE: TaskKind.TRAIN,
    pb.MODEL_VALIDATION: TaskKind.VALIDATE,
    pb.MODEL_PREDICTION: TaskKind.PREDICT,
    pb.FORWARD: TaskKind.FORWARD,
    pb.BACKWARD: TaskKind.BACKWARD,
}
_TYPE_BY_KIND: dict[TaskKind, pb.StatusType.ValueType] = {
    TaskKind.TRAIN: pb.MODEL_UPDATE,
    TaskKind.VALIDATE: pb.MODEL_VALIDATION,
    TaskKind.PREDICT: pb.MODEL_PREDICTION,
    TaskKind.FORWARD: pb.FORWARD,
    TaskKind.BACKWARD: pb.BACKWARD,
    TaskKind.UNSUPPORTED: pb.LOG,
}
# TelemetryMessage keys, as FEDn's client names them (system-wide percentages).
TELEMETRY_CPU, TELEMETRY_MEMORY = "cpu_usage", "memory_usage"
_LOG_LEVELS: dict[StatusLevel, pb.LogLevel.ValueType] = {
    StatusLevel.INFO: pb.INFO,
    StatusLevel.DEBUG: pb.DEBUG,
    StatusLevel.WARNING: pb.WARNING,
    StatusLevel.ERROR: pb.ERROR,
    StatusLevel.AUDIT: pb.AUDIT,
}


def task_type(kind: TaskKind | None) -> pb.StatusType.ValueType:
    """The StatusType integer for a task kind (LOG when a status is about no task)."""
    return pb.LOG if kind is None else _TYPE_BY_KIND[kind]


def task_kind(type_: int) -> TaskKind:
    """The task kind for a StatusType integer; UNSUPPORTED for types the client cannot run."""
    return _KIND_BY_TYPE.get(type_, TaskKind.UNSUPPORTED)


def type_name(type_: int) -> str:
    try:
        return str(pb.StatusType.Name(type_))  # type: ignore[arg-type]
    except ValueError:
        return f"type {type_}"


def log_level(level: StatusLevel) -> pb.LogLevel.ValueType:
    return _LOG_LEVELS[level]


def task_from_pb(request: pb.TaskRequest) -> Task | None:
    """A TaskRequest as a domain Task, or None when it was not sent by a combiner.

    Every type becomes a task: the ones the client cannot run become UNSUPPORTED
    tasks, which are answered with an ERROR status instead of being dropped.
    """
    if request.sender.role != pb.COMBINER:
        return None
    return task_of(
        task_kind(request.type),
        request.model_id,
        request.session_id,
        request.correlation_id,
        request.data,
        request.sender.name,
        type_name(request.type),
    )


def client_pb(identity: Identity) -> pb.Client:
    return pb.Client(name=identity.name, role=pb.CLIENT, client_id=identity.client_id)


def combiner_pb(name: str) -> pb.Client:
    """The receiver of a result: the combiner that sent the task."""
    return pb.Client(name=name, role=pb.COMBINER)


def now_timestamp() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def subscription_pb(identity: Identity) -> pb.ClientAvailableMessage:
    return pb.ClientAvailableMessage(sender=client_pb(identity))


def heartbeat_pb(identity: Identity, usage: ResourceUsage | None = None) -> pb.Heartbeat:
    """FEDn's client leaves the utilisation fields empty; we fill them (percent) when measured."""
    beat = pb.Heartbeat(sender=client_pb(identity))
    if usage is not None and usage.memory_percent is not None:
        beat.memory_utilisation = usage.memory_percent
    if usage is not None and usage.cpu_percent is not None:
        beat.cpu_utilisation = usage.cpu_percent
    return beat


def telemetry_pb(usage: ResourceUsage, identity: Identity) -> pb.TelemetryMessage:
    """memory_usage and cpu_usage in percent, the keys FEDn's client sends; unmeasured ones left out."""
    message = pb.TelemetryMessage(sender=client_pb(identity), timestamp=now_timestamp())
    if usage.memory_percent is not None:
        message.telemetries.add(key=TELEMETRY_MEMORY, value=usage.memory_percent)
    if usage.cpu_percent is not None:
        message.telemetries.add(key=TELEMETRY_CPU, value=usage.cpu_percent)
    return message


def backward_completion_pb(completion: BackwardCompletion, identity: Identity) -> pb.BackwardCompletion:
    return pb.BackwardCompletion(
        sender=client_pb(identity),
        receiver=combiner_pb(completion.receiver_name),
        gradient_id=completion.gradient_id,
        correlation_id=completion.correlation_id,
        session_id=completion.session_id,
        timestamp=now_timestamp(),
        meta=json.dumps(outcome_meta(completion.outcome, completion.task_data)),
    )


def status_pb(status: TaskStatus, identity: Identity) -> pb.Status:
    line = status_line(status)
    return pb.Status(
        sender=client_pb(identity),
        status=line.text,
        log_level=log_level(line.level),
        data=line.data,
        correlation_id=line.correlation_id,
        timestamp=now_timestamp(),
        type=task_type(line.kind),
        session_id=line.session_id,
    )


def update_pb(update: ModelUpdate, identity: Identity) -> pb.ModelUpdate:
    # FEDn writes this timestamp as str(datetime.now(UTC)), e.g. "2026-11-27 22:00:01.479178+00:00".
    return pb.ModelUpdate(
        sender=client_pb(identity),
        receiver=combiner_pb(update.receiver_name),
        model_id=update.model_id,
        model_update_id=update.model_update_id,
        correlation_id=update.correlation_id,
        timestamp=str(datetime.now(UTC)),
        meta=update_meta_json(update),
    )


def validation_pb(validation: Validation, identity: Identity) -> pb.ModelValidation:
    return pb.ModelValidation(
        sender=client_pb(identity),
        receiver=combiner_pb(validation.receiver_name),
        model_id=validation.model_id,
        data=json.dumps(dict(validation.metrics)),
        correlation_id=validation.correlation_id,
        timestamp=now_timestamp(),
        session_id=validation.session_id,
    )


def prediction_pb(prediction: Prediction, identity: Identity) -> pb.ModelPrediction:
    return pb.ModelPrediction(
        sender=client_pb(identity),
        receiver=combiner_pb(prediction.receiver_name),
        model_id=prediction.model_id,
        data=json.dumps(dict(prediction.output)),
        correlation_id=prediction.correlation_id,
        timestamp=now_timestamp(),
        prediction_id=prediction.prediction_id,
    )


def metric_pb(report: MetricReport, identity: Identity) -> pb.ModelMetric:
    """A ModelMetric as FEDn's in-process client sends it: the step always set (also 0)."""
    return pb.ModelMetric(
        sender=client_pb(identity),
        metrics=[pb.MetricElem(key=key, value=value) for key, value in report.metrics.items()],
        timestamp=now_timestamp(),
        step=UInt32Value(value=report.step),
        model_id=report.model_id,
        round_id=report.round_id,
        session_id=report.session_id,
    )


def attributes_pb(report: AttributeReport, identity: Identity) -> pb.AttributeMessage:
    return pb.AttributeMessage(
        sender=client_pb(identity),
        attributes=[pb.AttributeElem(key=key, value=value) for key, value in report.attributes.items()],
        timestamp=now_timestamp(),
    )


def download_request_pb(model_id: str, identity: Identity) -> pb.ModelRequest:
    # FEDn sends only client_id and role here, no name.
    return pb.ModelRequest(id=model_id, sender=pb.Client(client_id=identity.client_id, role=pb.CLIENT))
