"""The gRPC transport's wording: typed statuses and outcomes spelled exactly as FEDn 0.33's client does."""

from __future__ import annotations

import json

import pytest
from fedclient.adapters.combiner_grpc.vocabulary import (
    StatusLevel,
    outcome_meta,
    status_line,
    task_of,
    training_outcome_of,
)
from fedclient.domain.model import Stage, TaskKind, TaskStatus
from fedclient.domain.redaction import register_secret
from fedclient.domain.results import (
    BackwardOutcome,
    ForwardOutcome,
    PredictionOutcome,
    TrainingOutcome,
    ValidationOutcome,
)

CONFIG = '{"round_id": "3", "round_timeout": "180", "client_settings": {"lr": 0.1}}'


def test_received_carries_the_request_as_json() -> None:
    task = task_of(TaskKind.TRAIN, "m0", "s1", "c1", CONFIG, "combiner-0")
    line = status_line(TaskStatus(Stage.RECEIVED, task))
    assert (line.text, line.level, line.kind) == (
        "Received request from combiner.",
        StatusLevel.AUDIT,
        TaskKind.TRAIN,
    )
    assert (line.session_id, line.correlation_id) == ("s1", "c1")
    assert json.loads(line.data) == {
        "type": "train",
        "model_id": "m0",
        "session_id": "s1",
        "correlation_id": "c1",
        "sender": "combiner-0",
        "data": CONFIG,
    }


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (TaskKind.TRAIN, "\t Starting processing of training request for model_id m0"),
        (TaskKind.FORWARD, "\t Starting processing of forward request for model_id m0"),
        (TaskKind.BACKWARD, "\t Starting processing of backward request for gradient_id m0"),
        (TaskKind.VALIDATE, "Processing validate request for model_id m0"),
    ],
)
def test_started(kind: TaskKind, text: str) -> None:
    line = status_line(TaskStatus(Stage.STARTED, task_of(kind, "m0")))
    assert (line.text, line.level, line.kind, line.data) == (text, StatusLevel.INFO, kind, "")


def test_done_statuses_and_their_data() -> None:
    train = task_of(TaskKind.TRAIN, "m0", "s", "c", CONFIG)
    line = status_line(TaskStatus(Stage.DONE, train, TrainingOutcome({"num_examples": 4}, 1.0, 2.5), "u1"))
    assert (line.text, line.level, line.kind) == (
        "Model update completed.",
        StatusLevel.AUDIT,
        TaskKind.TRAIN,
    )
    assert json.loads(line.data) == {
        "model_id": "m0",
        "model_update_id": "u1",
        "meta": {
            "training_metadata": {"num_examples": 4},
            "exec_training": 2.5,
            "fetch_model": 1.0,
            "config": CONFIG,
        },
    }
    forward = task_of(TaskKind.FORWARD, "m0")
    outcome = ForwardOutcome({"num_examples": 2}, execute=1.0, upload=0.25, processing=1.5)
    line = status_line(TaskStatus(Stage.DONE, forward, outcome, "e1"))
    assert (line.text, line.kind) == ("Forward pass completed.", TaskKind.TRAIN)  # filed as a model update
    assert line.data == (
        '{"model_id": "m0", "model_update_id": "e1", "meta": {"exec_training": 1.0, "training_metadata": '
        '{"num_examples": 2}, "config": "", "upload_model": 0.25, "processing_time": 1.5}}'
    )
    line = status_line(
        TaskStatus(Stage.DONE, task_of(TaskKind.VALIDATE, "m0"), ValidationOutcome({"acc": 0.5}))
    )
    assert (line.text, line.data) == (
        "Model validation completed.",
        '{"model_id": "m0", "metrics": {"acc": 0.5}}',
    )
    line = status_line(TaskStatus(Stage.DONE, task_of(TaskKind.PREDICT, "m0"), PredictionOutcome({"y": 1})))
    assert (line.text, line.kind, line.data) == ("Model prediction completed.", TaskKind.PREDICT, "")
    line = status_line(TaskStatus(Stage.DONE, task_of(TaskKind.BACKWARD, "g0"), BackwardOutcome(0.5, 1.0)))
    assert (line.text, line.kind, line.data) == (
        "Backward pass completed. Status: finished_backward",
        TaskKind.BACKWARD,
        "",
    )


def test_a_failure_names_the_task_and_keeps_secrets_out() -> None:
    register_secret("s3cr3t-token-value")
    task = task_of(TaskKind.PREDICT, "m9", "s", "c")
    line = status_line(TaskStatus(Stage.FAILED, task, error="boom with s3cr3t-token-value"))
    assert (line.text, line.level, line.kind) == (
        "predict task for model m9 failed: boom with ***",
        StatusLevel.ERROR,
        TaskKind.PREDICT,
    )


def test_a_training_meta_reads_back_into_its_outcome() -> None:
    outcome = TrainingOutcome({"num_examples": 4}, fetch=1.0, execute=2.5)
    assert training_outcome_of(outcome_meta(outcome, CONFIG)) == (outcome, CONFIG)
    uploaded = outcome_meta(TrainingOutcome({"num_examples": 4}, 1.0, 2.5, upload=0.5), CONFIG)
    assert list(uploaded) == [
        "training_metadata",
        "exec_training",
        "fetch_model",
        "config",
        "upload_model",
        "processing_time",
    ]
    assert uploaded["processing_time"] == 4.0


@pytest.mark.parametrize(
    ("data", "round_id", "timeout", "inference"),
    [
        (CONFIG, "3", 180.0, False),
        ('{"round_id": 4, "round_timeout": "-1", "is_sl_inference": "True"}', "4", None, True),
        ('{"round_timeout": "soon", "is_sl_inference": true}', "", None, True),
        ("", "", None, False),
    ],
)
def test_the_request_config_becomes_typed_fields(
    data: str, round_id: str, timeout: float | None, inference: bool
) -> None:
    task = task_of(TaskKind.TRAIN, "m0", data=data)
    assert (task.round_id, task.round_timeout, task.sl_inference) == (round_id, timeout, inference)
    assert task.problem is None


def test_a_request_that_is_not_a_json_object_is_refused_with_a_reason() -> None:
    assert (
        task_of(TaskKind.TRAIN, "m0", data="[1]").problem
        == "the request data must be a JSON object, got list"
    )
    assert task_of(TaskKind.TRAIN, "", data="{}").problem == "the request names no usable model id ('')"
