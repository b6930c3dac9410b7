"""pb <-> domain mapping against the FEDn 0.33 wire integers (docs/PROTOCOL.md §3.2-§3.11)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from fedclient.adapters.combiner_grpc import conversions as conv
from fedclient.adapters.combiner_grpc.generated import fedn_pb2 as pb
from fedclient.adapters.combiner_grpc.vocabulary import StatusLevel, task_of
from fedclient.domain.model import (
    BackwardCompletion,
    Identity,
    ModelUpdate,
    Prediction,
    ResourceUsage,
    Stage,
    TaskKind,
    TaskStatus,
    Validation,
)
from fedclient.domain.results import BackwardOutcome, TrainingOutcome

ME = Identity("alice", "cid-1")


def test_wire_integers() -> None:
    assert (pb.OTHER, pb.CLIENT, pb.COMBINER, pb.REDUCER) == (0, 1, 2, 3)
    assert (pb.LOG, pb.MODEL_UPDATE, pb.MODEL_VALIDATION, pb.MODEL_PREDICTION, pb.NETWORK) == (0, 2, 4, 5, 6)
    assert (pb.NONE, pb.INFO, pb.DEBUG, pb.WARNING, pb.ERROR, pb.AUDIT) == (0, 1, 2, 3, 4, 5)
    assert (pb.OK, pb.IN_PROGRESS, pb.IN_PROGRESS_OK, pb.FAILED, pb.UNKNOWN) == (0, 1, 2, 3, 4)


def request(type_: int, role: int = pb.COMBINER, data: str = "") -> pb.TaskRequest:
    return pb.TaskRequest(
        sender=pb.Client(name="combiner-1", role=role),  # type: ignore[arg-type]
        receiver=pb.Client(client_id="cid-1", role=pb.CLIENT),
        model_id="m0",
        correlation_id="corr",
        session_id="s1",
        type=type_,  # type: ignore[arg-type]
        data=data,
    )


@pytest.mark.parametrize(
    ("type_", "kind"),
    [
        (2, TaskKind.TRAIN),
        (4, TaskKind.VALIDATE),
        (5, TaskKind.PREDICT),
        (8, TaskKind.FORWARD),
        (10, TaskKind.BACKWARD),
    ],
)
def test_task_types(type_: int, kind: TaskKind) -> None:
    data = json.dumps({"round_id": "7", "client_settings": {"epochs": 2}})
    task = conv.task_from_pb(request(type_, data=data))
    assert task is not None
    assert (task.kind, task.model_id, task.correlation_id, task.session_id) == (kind, "m0", "corr", "s1")
    assert task.sender_name == "combiner-1"
    assert task.data == data and task.round_id == "7" and task.client_settings == {"epochs": 2}


@pytest.mark.parametrize(
    ("type_", "name"),
    [
        (0, "LOG"),
        (1, "MODEL_UPDATE_REQUEST"),
        (3, "MODEL_VALIDATION_REQUEST"),
        (6, "NETWORK"),
        (99, "type 99"),
    ],
)
def test_other_task_types_become_unsupported_tasks_not_drops(type_: int, name: str) -> None:
    task = conv.task_from_pb(request(type_))
    assert task is not None and task.kind is TaskKind.UNSUPPORTED and task.type_name == name
    assert (task.model_id, task.correlation_id, task.session_id) == ("m0", "corr", "s1")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("", False),
        ('{"is_sl_inference": "True"}', True),
        ('{"is_sl_inference": "False"}', False),
        ('{"is_sl_inference": true}', True),
    ],
)
def test_forward_inference_flag(data: str, expected: bool) -> None:
    task = conv.task_from_pb(request(pb.FORWARD, data=data))
    assert task is not None and task.sl_inference is expected


def test_statuses_about_split_learning_and_unsupported_tasks() -> None:
    assert [conv.task_type(k) for k in (TaskKind.FORWARD, TaskKind.BACKWARD, TaskKind.UNSUPPORTED)] == [
        pb.FORWARD,
        pb.BACKWARD,
        pb.LOG,
    ]


@pytest.mark.parametrize("role", [pb.OTHER, pb.CLIENT, pb.REDUCER])
def test_tasks_not_from_a_combiner_are_ignored(role: int) -> None:
    assert conv.task_from_pb(request(pb.MODEL_UPDATE, role=role)) is None


def test_unparseable_data_reads_as_empty_config() -> None:
    task = conv.task_from_pb(request(pb.MODEL_PREDICTION, data="not json"))
    assert task is not None and task.data == "not json"
    assert (task.round_id, task.round_timeout, task.client_settings, task.sl_inference) == (
        "",
        None,
        {},
        False,
    )


def sender_ok(message: pb.ModelUpdate | pb.ModelValidation | pb.ModelPrediction | pb.Status) -> None:
    assert (message.sender.name, message.sender.role, message.sender.client_id) == ("alice", 1, "cid-1")


def test_model_update() -> None:
    outcome = TrainingOutcome({"num_examples": 3}, fetch=1.5, execute=2.0, upload=0.5)
    update = ModelUpdate("m0", "u1", outcome, "combiner-1", "corr", "s1", task_data='{"round_id": "1"}')
    msg = conv.update_pb(update, ME)
    sender_ok(msg)
    assert (msg.receiver.name, msg.receiver.role) == ("combiner-1", 2)
    assert (msg.model_id, msg.model_update_id, msg.correlation_id, msg.config) == ("m0", "u1", "corr", "")
    # The stock client's layout, key order included: the combiner reads round_id from "config".
    assert msg.meta == (
        '{"training_metadata": {"num_examples": 3}, "exec_training": 2.0, "fetch_model": 1.5, '
        '"config": "{\\"round_id\\": \\"1\\"}", "upload_model": 0.5, "processing_time": 4.0}'
    )
    assert datetime.fromisoformat(msg.timestamp).utcoffset() is not None  # "2026-... +00:00"
    assert msg.timestamp.endswith("+00:00") and "T" not in msg.timestamp


def test_model_validation() -> None:
    msg = conv.validation_pb(Validation("m1", {"acc": 0.5}, "combiner-1", "corr", "s1"), ME)
    sender_ok(msg)
    assert (msg.receiver.name, msg.receiver.role) == ("combiner-1", 2)
    assert (msg.model_id, msg.correlation_id, msg.session_id) == ("m1", "corr", "s1")
    assert json.loads(msg.data) == {"acc": 0.5}
    assert msg.HasField("timestamp") and msg.timestamp.seconds > 0


def test_model_prediction() -> None:
    msg = conv.prediction_pb(Prediction("m1", {"y": [1]}, "combiner-1", "corr", "pred-1"), ME)
    sender_ok(msg)
    assert (msg.prediction_id, msg.correlation_id, msg.model_id) == ("pred-1", "corr", "m1")
    assert json.loads(msg.data) == {"y": [1]}
    assert msg.HasField("timestamp")


@pytest.mark.parametrize(
    ("level", "wire"),
    [
        (StatusLevel.INFO, 1),
        (StatusLevel.DEBUG, 2),
        (StatusLevel.WARNING, 3),
        (StatusLevel.ERROR, 4),
        (StatusLevel.AUDIT, 5),
    ],
)
def test_status_levels(level: StatusLevel, wire: int) -> None:
    assert conv.log_level(level) == wire


@pytest.mark.parametrize(
    ("kind", "wire"), [(TaskKind.TRAIN, 2), (TaskKind.VALIDATE, 4), (TaskKind.PREDICT, 5), (None, 0)]
)
def test_status_types(kind: TaskKind | None, wire: int) -> None:
    assert conv.task_type(kind) == wire


def test_status_fields() -> None:
    task = task_of(TaskKind.TRAIN, "m0", "s1", "corr", "", "combiner-1")
    report = TaskStatus(Stage.DONE, task, TrainingOutcome({"a": 1}, fetch=1.0, execute=2.0), "u1")
    msg = conv.status_pb(report, ME)
    sender_ok(msg)
    assert (msg.status, msg.session_id, msg.correlation_id, msg.log_level, msg.type) == (
        "Model update completed.",
        "s1",
        "corr",
        pb.AUDIT,
        pb.MODEL_UPDATE,
    )
    assert msg.data == (
        '{"model_id": "m0", "model_update_id": "u1", "meta": {"training_metadata": {"a": 1}, '
        '"exec_training": 2.0, "fetch_model": 1.0, "config": ""}}'
    )
    assert msg.HasField("timestamp")


def test_subscription_heartbeat_and_model_requests() -> None:
    assert conv.subscription_pb(ME).sender == pb.Client(name="alice", role=pb.CLIENT, client_id="cid-1")
    beat = conv.heartbeat_pb(ME)
    assert beat.sender == pb.Client(name="alice", role=pb.CLIENT, client_id="cid-1")
    assert (beat.memory_utilisation, beat.cpu_utilisation) == (0.0, 0.0)
    download = conv.download_request_pb("m0", ME)
    assert (download.id, download.sender.client_id, download.sender.role, download.sender.name) == (
        "m0",
        "cid-1",
        1,
        "",
    )


def test_heartbeat_carries_usage_when_measured() -> None:
    beat = conv.heartbeat_pb(ME, ResourceUsage(cpu_percent=12.5, memory_percent=40.25))
    assert (beat.cpu_utilisation, beat.memory_utilisation) == (12.5, 40.25)
    half = conv.heartbeat_pb(ME, ResourceUsage(cpu_percent=None, memory_percent=40.25))
    assert (half.cpu_utilisation, half.memory_utilisation) == (0.0, 40.25)


def test_telemetry_message_uses_fedn_keys_and_skips_unmeasured() -> None:
    msg = conv.telemetry_pb(ResourceUsage(cpu_percent=7.5, memory_percent=55.5), ME)
    sender_ok(msg)  # type: ignore[arg-type]
    assert {t.key: t.value for t in msg.telemetries} == {"cpu_usage": 7.5, "memory_usage": 55.5}
    assert msg.HasField("timestamp")
    only_memory = conv.telemetry_pb(ResourceUsage(memory_percent=55.5), ME)
    assert [t.key for t in only_memory.telemetries] == ["memory_usage"]


def test_backward_completion() -> None:
    outcome = BackwardOutcome(fetch=0.5, execute=1.25)
    done = BackwardCompletion("g1", outcome, "combiner-1", "corr", "s1", task_data="{}")
    msg = conv.backward_completion_pb(done, ME)
    sender_ok(msg)  # type: ignore[arg-type]
    assert (msg.receiver.name, msg.receiver.role, msg.gradient_id) == ("combiner-1", pb.COMBINER, "g1")
    assert (msg.correlation_id, msg.session_id) == ("corr", "s1")
    assert msg.meta == (
        '{"exec_training": 1.25, "processing_time": 1.25, "fetch_model": 0.5, "config": "{}", '
        '"status": "success"}'
    )
    assert msg.HasField("timestamp")
