"""What clients sent to the sandbox combiner, as plain dataclasses (no protobuf leaks out).

The round orchestrator and the tests read these; ``*_record()`` turn the
received messages into them. JSON payloads are parsed here once: a payload
that is not a JSON object reads as ``{}`` - the orchestrator decides what a
missing ``num_examples`` means, as FEDn's combiner does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..combiner_grpc.generated import fedn_pb2 as pb


@dataclass(frozen=True)
class StatusRecord:
    text: str
    level: str  # LogLevel name, e.g. "AUDIT"
    type: str  # StatusType name, e.g. "MODEL_UPDATE"
    sender_name: str
    sender_client_id: str
    session_id: str
    correlation_id: str
    data: str


@dataclass(frozen=True)
class UpdateRecord:
    model_id: str
    model_update_id: str
    meta: dict[str, Any]
    sender_name: str
    sender_client_id: str
    receiver_name: str
    correlation_id: str
    timestamp: str


@dataclass(frozen=True)
class ValidationRecord:
    model_id: str
    metrics: dict[str, Any]
    sender_name: str
    sender_client_id: str
    receiver_name: str
    correlation_id: str
    session_id: str


@dataclass(frozen=True)
class PredictionRecord:
    model_id: str
    output: dict[str, Any]
    sender_name: str
    sender_client_id: str
    receiver_name: str
    correlation_id: str
    prediction_id: str


@dataclass(frozen=True)
class MetricRecord:
    metrics: dict[str, float]
    step: int | None  # None: the message carried no step wrapper
    model_id: str
    round_id: str
    session_id: str
    sender_name: str
    sender_client_id: str


@dataclass(frozen=True)
class AttributeRecord:
    attributes: dict[str, str]
    sender_name: str
    sender_client_id: str


@dataclass(frozen=True)
class BackwardRecord:
    gradient_id: str
    meta: dict[str, Any]
    sender_name: str
    sender_client_id: str
    receiver_name: str
    correlation_id: str
    session_id: str


@dataclass(frozen=True)
class HeartbeatRecord:
    sender_name: str
    sender_client_id: str
    memory_utilisation: float
    cpu_utilisation: float


@dataclass(frozen=True)
class TelemetryRecord:
    sender_name: str
    sender_client_id: str
    values: dict[str, float]
    has_timestamp: bool


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _enum_name(enum: Any, value: int) -> str:
    try:
        return str(enum.Name(value))
    except ValueError:
        return str(value)


def status_record(msg: pb.Status) -> StatusRecord:
    return StatusRecord(
        text=msg.status,
        level=_enum_name(pb.LogLevel, msg.log_level),
        type=_enum_name(pb.StatusType, msg.type),
        sender_name=msg.sender.name,
        sender_client_id=msg.sender.client_id,
        session_id=msg.session_id,
        correlation_id=msg.correlation_id,
        data=msg.data,
    )


def update_record(msg: pb.ModelUpdate) -> UpdateRecord:
    return UpdateRecord(
        model_id=msg.model_id,
        model_update_id=msg.model_update_id,
        meta=json_object(msg.meta),
        sender_name=msg.sender.name,
        sender_client_id=msg.sender.client_id,
        receiver_name=msg.receiver.name,
        correlation_id=msg.correlation_id,
        timestamp=msg.timestamp,
    )


def validation_record(msg: pb.ModelValidation) -> ValidationRecord:
    return ValidationRecord(
        model_id=msg.model_id,
        metrics=json_object(msg.data),
        sender_name=msg.sender.name,
        sender_client_id=msg.sender.client_id,
        receiver_name=msg.receiver.name,
        correlation_id=msg.correlation_id,
        session_id=msg.session_id,
    )


def prediction_record(msg: pb.ModelPrediction) -> PredictionRecord:
    return PredictionRecord(
        model_id=msg.model_id,
        output=json_object(msg.data),
        sender_name=msg.sender.name,
        sender_client_id=msg.sender.client_id,
        receiver_name=msg.receiver.name,
        correlation_id=msg.correlation_id,
        prediction_id=msg.prediction_id,
    )


def metric_record(msg: pb.ModelMetric) -> MetricRecord:
    return MetricRecord(
        metrics={elem.key: elem.value for elem in msg.metrics},
        step=msg.step.value if msg.HasField("step") else None,
        model_id=msg.model_id,
        round_id=msg.round_id,
        session_id=msg.session_id,
        sender_name=msg.sender.name,
        sender_client_id=msg.sender.client_id,
    )


def attribute_record(msg: pb.AttributeMessage) -> AttributeRecord:
    return AttributeRecord(
        attributes={elem.key: elem.value for elem in msg.attributes},
        sender_name=msg.sender.name,
        sender_client_id=msg.sender.client_id,
    )


def backward_record(msg: pb.BackwardCompletion) -> BackwardRecord:
    return BackwardRecord(
        gradient_id=msg.gradient_id,
        meta=json_object(msg.meta),
        sender_name=msg.sender.name,
        sender_client_id=msg.sender.client_id,
        receiver_name=msg.receiver.name,
        correlation_id=msg.correlation_id,
        session_id=msg.session_id,
    )


def heartbeat_record(msg: pb.Heartbeat) -> HeartbeatRecord:
    return HeartbeatRecord(msg.sender.name, msg.sender.client_id, msg.memory_utilisation, msg.cpu_utilisation)


def telemetry_record(msg: pb.TelemetryMessage) -> TelemetryRecord:
    return TelemetryRecord(
        msg.sender.name,
        msg.sender.client_id,
        {t.key: t.value for t in msg.telemetries},
        msg.HasField("timestamp"),
    )
