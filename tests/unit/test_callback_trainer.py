"""The in-process trainer over in-memory fakes: callbacks, model forms, log_metric context, failures."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fedclient.adapters.combiner_grpc.vocabulary import StatusLevel, task_of
from fedclient.adapters.model_npz import load_arrays, save_arrays
from fedclient.adapters.trainers.callback_trainer import (
    Callbacks,
    CallbackTrainer,
    load_entrypoint,
    log_attributes,
    log_metric,
)
from fedclient.domain.errors import ConfigError
from fedclient.domain.links import LinkHolder
from fedclient.domain.model import Identity, Task, TaskKind
from fedclient.domain.state import ClientState, client_state_to_string
from fedclient.domain.tasks import TaskRunner
from fedclient.testing.fakes import (
    CountingIds,
    FakeClock,
    InMemoryCombiner,
    InMemoryLink,
    SeededRandom,
)

from tests.unit.world import lines, meta, task_runner

ME = Identity("site", "cid-1")


def _runner(tmp_path: Path, callbacks: Callbacks) -> tuple[TaskRunner, InMemoryCombiner]:
    combiner = InMemoryCombiner()
    links = LinkHolder()
    links.set(InMemoryLink(combiner, ME))
    runner = task_runner(
        links,
        CallbackTrainer(callbacks),
        tmp_path,
        clock=FakeClock(),
        ids=CountingIds(),
        random=SeededRandom(),
    )
    return runner, combiner


def _train_task(model_id: str, round_id: str = "7") -> Task:
    data = json.dumps({"round_id": round_id, "client_settings": {"lr": "0.5"}})
    return task_of(TaskKind.TRAIN, model_id, "sess-1", "corr-1", data, "combiner")


def _seed(combiner: InMemoryCombiner, tmp_path: Path, model_id: str = "seed") -> None:
    path = save_arrays([np.zeros(3), np.ones((2, 2))], tmp_path / "seed.npz")
    combiner.models[model_id] = path.read_bytes()


async def test_numpy_callbacks_train_log_metrics_with_the_task_context_and_keep_one_thread(
    tmp_path: Path,
) -> None:
    threads: list[str] = []

    def train(model: list[Any], settings: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        threads.append(threading.current_thread().name)
        assert log_metric({"loss": 0.5})
        assert log_metric({"loss": 0.25, "acc": np.float32(0.75)})
        assert log_metric({"lr": float(settings["lr"])}, step=10, commit=False)
        assert log_attributes({"gpu": False, "site": "a"})
        return [w + 1 for w in model], {"num_examples": 42}

    runner, combiner = _runner(tmp_path, Callbacks(train=train, models="numpy"))
    _seed(combiner, tmp_path)
    for _ in range(2):
        outcome = await runner.handle(_train_task("seed"))
        assert outcome.ok, outcome.error
    assert len(set(threads)) == 1 and threads[0] == "fedclient-callbacks"
    update = combiner.updates[0]
    assert meta(update)["training_metadata"] == {"num_examples": 42}
    out = tmp_path / "out.npz"
    out.write_bytes(combiner.models[update.model_update_id])
    assert [a.tolist() for a in load_arrays(out)] == [[1, 1, 1], [[2, 2], [2, 2]]]
    # FEDn's numbering: 0, 1, then an explicit step 10 that is not committed; a new task starts at 0.
    assert [m.step for m in combiner.metrics] == [0, 1, 10, 0, 1, 10]
    first = combiner.metrics[0]
    assert (first.model_id, first.round_id, first.session_id) == ("seed", "7", "sess-1")
    assert combiner.metrics[1].metrics == {"loss": 0.25, "acc": 0.75}
    assert combiner.attributes[0].attributes == {"gpu": "False", "site": "a"}


async def test_a_raising_callback_fails_its_task_and_the_next_task_runs(tmp_path: Path) -> None:
    calls = []

    def train(model: Path, settings: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        calls.append(model)
        if len(calls) == 1:
            raise RuntimeError("out of data")
        return model, {"training_metadata": {"num_examples": 3}}  # FEDn's nested form

    runner, combiner = _runner(tmp_path, Callbacks(train=train))
    _seed(combiner, tmp_path)
    bad = await runner.handle(_train_task("seed"))
    assert not bad.ok and "the train callback raised RuntimeError: out of data" in bad.error
    errors = [s for s in lines(combiner.statuses) if s.level is StatusLevel.ERROR]
    assert len(errors) == 1 and "out of data" in errors[0].text
    good = await runner.handle(_train_task("seed"))
    assert good.ok and len(combiner.updates) == 1
    assert isinstance(calls[0], Path)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ("not a pair", "must return (model, metadata)"),
        ((None, {"num_examples": 1}), "returned no model"),
        ((b"model", {"examples": 1}), "needs 'num_examples'"),
        ((object(), {"num_examples": 1}), "not a path, bytes, a BytesIO or a list of arrays"),
    ],
)
async def test_bad_train_results_are_failed_tasks_with_a_reason(
    tmp_path: Path, result: Any, message: str
) -> None:
    runner, combiner = _runner(tmp_path, Callbacks(train=lambda m, s: result))
    _seed(combiner, tmp_path)
    outcome = await runner.handle(_train_task("seed"))
    assert not outcome.ok and message in outcome.error
    assert not combiner.updates


async def test_validate_and_predict_take_bytesio_as_fedn_does(tmp_path: Path) -> None:
    seen: list[Any] = []

    def validate(model: io.BytesIO) -> dict[str, Any]:
        seen.append(model)
        assert log_metric({"val_loss": 1.5})
        return {"accuracy": 0.9}

    callbacks = Callbacks(validate=validate, predict=lambda m: {"n": len(m.read())}, models="bytesio")
    runner, combiner = _runner(tmp_path, callbacks)
    _seed(combiner, tmp_path, "m1")
    assert (await runner.handle(Task(TaskKind.VALIDATE, "m1", "s", "c", "", "combiner"))).ok
    assert (await runner.handle(Task(TaskKind.PREDICT, "m1", "p-9", "c", "", "combiner"))).ok
    assert isinstance(seen[0], io.BytesIO)
    assert combiner.validations[0].metrics == {"accuracy": 0.9}
    assert combiner.predictions[0].output == {"n": len(combiner.models["m1"])}
    assert combiner.metrics[0].round_id == "" and combiner.metrics[0].model_id == "m1"


async def test_missing_callback_and_bad_metric_values_are_clear(tmp_path: Path) -> None:
    def validate(model: Path) -> dict[str, Any]:
        log_metric({"loss": "high"})
        return {}

    runner, combiner = _runner(tmp_path, Callbacks(validate=validate))
    _seed(combiner, tmp_path, "m1")
    train = await runner.handle(_train_task("m1"))
    assert not train.ok and "no train callback was given (the client has: validate)" in train.error
    bad = await runner.handle(Task(TaskKind.VALIDATE, "m1", "s", "c", "", "combiner"))
    assert not bad.ok and "metric 'loss' must be a number" in bad.error


def test_log_metric_outside_a_task_sends_nothing() -> None:
    assert log_metric({"loss": 1.0}) is False
    assert log_attributes({"a": 1}) is False


def test_entrypoints_load_modules_objects_and_factories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mycallbacks.py").write_text(
        "LOADS = []\nLOADS.append(1)\n"
        "def train(model, settings):\n    return model, {'num_examples': 1}\n"
        "class Job:\n    models = 'numpy'\n    def validate(self, model):\n        return {}\n"
        "def make():\n    return {'predict': lambda m: {}}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert load_entrypoint("mycallbacks").names() == ["train"]
    job = load_entrypoint("mycallbacks:Job")  # a class is a factory: called once
    assert job.names() == ["validate"] and job.models == "numpy"
    assert load_entrypoint("mycallbacks:make").names() == ["predict"]
    import mycallbacks  # type: ignore[import-not-found]

    assert mycallbacks.LOADS == [1]
    for spec, message in [
        ("no_such_module:x", "cannot import 'no_such_module'"),
        ("mycallbacks:nothing", "has no attribute 'nothing'"),
        ("mycallbacks:LOADS", "has none of the callbacks"),
        ("not a spec", "must look like package.module:object"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_entrypoint(spec)


def test_client_state_has_fedn_names_and_numbers() -> None:
    assert [ClientState.idle, ClientState.training, ClientState.validating] == [1, 2, 3]
    assert ClientState.idle is ClientState.IDLE
    assert client_state_to_string(ClientState.validating) == "VALIDATING"
    assert client_state_to_string(99) == "UNKNOWN"


async def test_forward_and_backward_callbacks_for_split_learning(tmp_path: Path) -> None:
    got: list[Any] = []

    def forward(client_id: str, is_sl_inference: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        got.append((client_id, is_sl_inference))
        return {client_id: np.ones((4, 2))}, {"num_examples": 4}

    def backward(gradients: dict[str, Any], client_id: str) -> dict[str, Any]:
        got.append(gradients[client_id].shape)
        return {"status": "success"}

    trainer = CallbackTrainer(Callbacks(forward=forward, backward=backward, models="numpy"))
    embeddings = tmp_path / "embeddings"  # no suffix, as FEDn names it: written through a handle
    # the Trainer port's order (domain/ports.py), which the task runner calls it in
    assert await trainer.forward("cid-1", embeddings, False) == {"num_examples": 4}
    with np.load(embeddings) as data:
        assert data["cid-1"].shape == (4, 2)
    grads = save_arrays({"cid-1": np.zeros((4, 2))}, tmp_path / "grads")
    assert await trainer.backward(grads, "cid-1") == {"status": "success"}
    assert got == [("cid-1", False), (4, 2)]


async def test_callbacks_queued_on_a_shut_pool_fail_at_once_the_running_one_finishes(tmp_path: Path) -> None:
    """simulate's stop: the pool shuts down with cancel_futures; queued tasks must not wait the grace."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from fedclient.domain.errors import TaskFailed

    release = threading.Event()
    started = threading.Event()

    def validate(model: Any) -> dict[str, float]:
        started.set()
        release.wait(10)
        return {"accuracy": 1.0}

    pool = ThreadPoolExecutor(1)
    trainer = CallbackTrainer(Callbacks(validate=validate), pool)
    model = tmp_path / "in.npz"
    save_arrays([np.zeros(2)], model)
    running = asyncio.ensure_future(trainer.validate(model, tmp_path / "a.json"))
    queued = asyncio.ensure_future(trainer.validate(model, tmp_path / "b.json"))
    await asyncio.to_thread(started.wait, 10)
    pool.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(TaskFailed, match="stopped before the callback started"):
        await asyncio.wait_for(queued, 5)
    # submitted after the shutdown
    with pytest.raises(TaskFailed, match="stopped before the callback started"):
        await trainer.validate(model, tmp_path / "c.json")
    assert not running.done()  # the running callback is not cut short
    release.set()
    assert (await asyncio.wait_for(running, 5))["accuracy"] == 1.0
