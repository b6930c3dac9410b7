"""Every task type FEDn 0.33 sends is run or answered: dispatch by kind, over the in-memory fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.vocabulary import (
    BACKWARD_DONE,
    FORWARD_DONE,
    PREDICTION_DONE,
    RECEIVED,
    UPDATE_DONE,
    VALIDATION_DONE,
    StatusLevel,
    task_of,
)
from fedclient.domain.model import Task, TaskKind
from fedclient.domain.state import ClientState
from fedclient.testing.fakes import InMemoryTrainer

from tests.unit.world import ROUND_CONFIG, World, lines, meta

SL_CONFIG = json.dumps({"round_id": "3", "is_sl_inference": "False", "task": "forward"})


def task(kind: TaskKind, model: str = "seed", data: str = "", corr: str = "c1", type_name: str = "") -> Task:
    return task_of(kind, model, "s1", corr, data, "combiner-0", type_name)


# What the combiner records last for each kind, when the task succeeded.
LAST_STATUS = {
    TaskKind.TRAIN: UPDATE_DONE,
    TaskKind.VALIDATE: VALIDATION_DONE,
    TaskKind.PREDICT: PREDICTION_DONE,
    TaskKind.FORWARD: FORWARD_DONE,
    TaskKind.BACKWARD: BACKWARD_DONE,
}


@pytest.mark.parametrize("kind", list(TaskKind))
async def test_every_kind_is_run_or_answered_with_an_error(
    tmp_path: Path, archive: Path, kind: TaskKind
) -> None:
    w = World(tmp_path, archive)
    w.combiner.models["grad-1"] = b"gradients"
    model = "grad-1" if kind is TaskKind.BACKWARD else "seed"
    data = ROUND_CONFIG if kind is TaskKind.TRAIN else SL_CONFIG
    w.combiner.submit("cid-1", task(kind, model, data, type_name="NETWORK"))
    await w.run_until(lambda: bool(w.life.runner and w.life.runner.outcomes))

    [outcome] = w.life.runner.outcomes  # type: ignore[union-attr]
    statuses = lines(w.combiner.statuses)
    assert (statuses[0].text, statuses[0].level, statuses[0].kind) == (RECEIVED, StatusLevel.AUDIT, kind)
    if kind is TaskKind.UNSUPPORTED:
        assert not outcome.ok and outcome.error == "this client cannot run NETWORK requests"
        error = statuses[-1]
        assert (error.level, error.kind, error.correlation_id) == (StatusLevel.ERROR, kind, "c1")
        assert "cannot run NETWORK requests" in error.text
        assert w.trainer.calls == [] and list(w.life.state.history) == [ClientState.IDLE]
    else:
        assert outcome.ok, outcome.error
        assert statuses[-1].text == LAST_STATUS[kind] and statuses[-1].level is StatusLevel.AUDIT
        assert [c[0] for c in w.trainer.calls] == [kind.value]
        assert w.life.state.history[-1] is ClientState.IDLE and len(w.life.state.history) == 3
    assert not [s for s in statuses if s.level is StatusLevel.ERROR] or kind is TaskKind.UNSUPPORTED


async def test_forward_sends_embeddings_as_a_model_update_with_fedns_argv(
    tmp_path: Path, archive: Path
) -> None:
    w = World(tmp_path, archive)
    inference = json.dumps({"round_id": "3", "is_sl_inference": "True"})
    w.combiner.submit("cid-1", task(TaskKind.FORWARD, "session-model", inference))
    await w.run_until(lambda: any(s.text == FORWARD_DONE for s in lines(w.combiner.statuses)))

    [(entry, out, args)] = w.trainer.calls
    assert (entry, args) == ("forward", {"client_id": "cid-1", "sl_inference": True})  # the assigned id
    assert out.suffix == ""  # FEDn's forward output path has no suffix
    [update] = w.combiner.updates
    assert update.model_id == "session-model" and update.receiver_name == "combiner-0"
    assert w.combiner.models[update.model_update_id] == b"embeddings of cid-1"
    assert meta(update)["training_metadata"] == {"num_examples": 42}
    assert meta(update)["config"] == inference
    assert {"exec_training", "upload_model", "processing_time"} <= set(meta(update))
    assert "fetch_model" not in meta(update)  # nothing is downloaded for a forward pass
    texts = [(s.text, s.kind) for s in lines(w.combiner.statuses)]
    assert texts == [
        (RECEIVED, TaskKind.FORWARD),
        ("\t Starting processing of forward request for model_id session-model", TaskKind.FORWARD),
        (FORWARD_DONE, TaskKind.TRAIN),  # filed as a model update, as FEDn's client does
    ]
    assert json.loads(lines(w.combiner.statuses)[-1].data)["model_update_id"] == update.model_update_id


async def test_backward_downloads_gradients_runs_backward_and_reports_completion(
    tmp_path: Path, archive: Path
) -> None:
    w = World(tmp_path, archive)
    w.combiner.models["grad-7"] = b"the gradients"
    w.combiner.submit("cid-1", task(TaskKind.BACKWARD, "grad-7", SL_CONFIG, corr="c9"))
    await w.run_until(lambda: any(s.text == BACKWARD_DONE for s in lines(w.combiner.statuses)))

    [(entry, path, args)] = w.trainer.calls
    assert (entry, args) == ("backward", {"client_id": "cid-1", "gradients": b"the gradients"})
    assert path.suffix == ""
    [done] = w.combiner.backward_completions
    assert (done.gradient_id, done.receiver_name, done.correlation_id, done.session_id) == (
        "grad-7",
        "combiner-0",
        "c9",
        "s1",
    )
    assert meta(done)["status"] == "success" and meta(done)["config"] == SL_CONFIG
    assert {"exec_training", "processing_time", "fetch_model"} <= set(meta(done))
    assert w.combiner.updates == []


@pytest.mark.parametrize("kind", [TaskKind.FORWARD, TaskKind.BACKWARD])
async def test_a_failed_split_learning_pass_is_an_error_status_not_a_success(
    tmp_path: Path, archive: Path, kind: TaskKind
) -> None:
    w = World(tmp_path, archive, trainer=InMemoryTrainer(fail=kind.value))
    w.combiner.models["grad-1"] = b"g"
    w.combiner.submit("cid-1", task(kind, "grad-1" if kind is TaskKind.BACKWARD else "seed", SL_CONFIG))
    w.combiner.submit("cid-1", task(TaskKind.VALIDATE, corr="next"))
    await w.run_until(lambda: bool(w.combiner.validations))  # the client serves the next task

    errors = [s for s in lines(w.combiner.statuses) if s.level is StatusLevel.ERROR]
    assert [(e.kind, e.correlation_id) for e in errors] == [(kind, "c1")]
    assert f"{kind.value} exited with code 1" in errors[0].text
    # Unlike FEDn's client, a failed backward is not reported as a successful completion.
    assert w.combiner.backward_completions == [] and w.combiner.updates == []


async def test_a_missing_gradient_is_an_error_status(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.submit("cid-1", task(TaskKind.BACKWARD, "no-such-gradient", SL_CONFIG))
    await w.run_until(lambda: bool(w.life.runner and w.life.runner.outcomes))
    [error] = [s for s in lines(w.combiner.statuses) if s.level is StatusLevel.ERROR]
    assert "no-such-gradient" in error.text and error.kind is TaskKind.BACKWARD
    assert w.trainer.calls == []
