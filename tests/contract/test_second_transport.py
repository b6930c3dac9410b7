"""Adding a transport: the whole client, built by the container, over a transport that is not gRPC.

docs/ARCHITECTURE.md ("Adding a transport") lists the ports a second transport implements.
Here the in-memory transport (Discovery, CombinerConnector → CombinerLink) stands in for
one: the container builds every other object as in production (the outbox, the task
runner, the lifecycle, its retry and reconnect rules) and the client goes through an
assignment that is first deferred, a training round whose update is refused twice
before it is delivered once, a lost task stream and a validation on the new connection.

No FEDn vocabulary is in the middle: the tasks go in typed, the transport receives typed
status events and outcomes, and the gRPC transport's wording (``combiner_grpc.vocabulary``
and ``conversions``) is never called.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from fedclient.adapters.combiner_grpc import conversions, vocabulary
from fedclient.app.container import build_container, client_lifecycle
from fedclient.app.settings_load import load_settings
from fedclient.domain.model import (
    Assignment,
    AssignmentStatus,
    CombinerAddress,
    Stage,
    Task,
    TaskKind,
    TaskStatus,
)
from fedclient.domain.results import ForwardOutcome, TrainingOutcome, ValidationOutcome
from fedclient.testing.fakes import (
    FakeClock,
    InMemoryCombiner,
    InMemoryConnector,
    InMemoryDiscovery,
    InMemoryTrainer,
    InMemoryTrainerFactory,
    InMemoryUnpacker,
)

ADDRESS = CombinerAddress("combiner.example", 7000)


@pytest.fixture
def no_fedn_wording(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every function of the gRPC transport's wording and conversions, replaced by a recorder."""
    called: list[str] = []
    for module in (vocabulary, conversions):
        for name, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == module.__name__:

                def record(*args: Any, _name: str = f"{module.__name__}.{name}", **kwargs: Any) -> None:
                    called.append(_name)
                    raise AssertionError(f"{_name} was called")

                monkeypatch.setattr(module, name, record)
    yield called
    assert called == [], "the FEDn wording was used in the middle"


async def _until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


def _stages(combiner: InMemoryCombiner) -> list[Stage]:
    return [s.stage for s in combiner.statuses]


async def test_a_client_assigns_trains_resends_and_reconnects_over_a_second_transport(
    tmp_path: Path, no_fedn_wording: list[str]
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "fedn.yaml").write_text(json.dumps({"entry_points": {"train": {"command": "python t.py"}}}))
    settings = load_settings(
        {"api_url": "localhost", "local_package": package, "work_dir": tmp_path / "w", "client_id": "cid"}
    )
    combiner = InMemoryCombiner(models={"m0": b"global model"})
    discovery = InMemoryDiscovery(
        Assignment(AssignmentStatus.TRY_AGAIN, "the combiners are starting", retry_after=1.0),
        Assignment(AssignmentStatus.ASSIGNED, combiner=ADDRESS),
    )
    trainer = InMemoryTrainer(num_examples=7)
    container = build_container(settings)
    container.discovery.override(providers.Object(discovery))
    container.connector.override(providers.Object(InMemoryConnector(combiner)))
    container.unpacker.override(providers.Object(InMemoryUnpacker()))
    container.trainer_factory.override(providers.Object(InMemoryTrainerFactory(trainer)))
    container.clock.override(providers.Object(FakeClock()))
    combiner.fail_next["send_update"] = 2  # the update is refused twice, then accepted
    stop = asyncio.Event()
    async with client_lifecycle(container) as life:
        runner = asyncio.create_task(life.run(stop))
        combiner.submit("cid", Task(TaskKind.TRAIN, "m0", "s1", "train-1", sender_name="comb", round_id="1"))
        await _until(lambda: len(combiner.updates) == 1, "the update")
        await _until(lambda: _stages(combiner).count(Stage.DONE) == 1, "the training's completion")
        combiner.end_stream("cid")  # the connection is lost; the client reconnects
        await _until(lambda: len(combiner.connects) == 2, "a reconnect")
        combiner.submit("cid", Task(TaskKind.VALIDATE, combiner.updates[0].model_update_id, "s1", "val-1"))
        await _until(lambda: len(combiner.validations) == 1, "the validation")
        await _until(lambda: _stages(combiner).count(Stage.DONE) == 2, "the validation's completion")
        stop.set()
        await asyncio.wait_for(runner, 10)

    assert [r.identity.client_id for r in discovery.requests] == ["cid", "cid"], (
        "deferred once, then assigned"
    )
    assert [address for address, _ in combiner.connects] == [ADDRESS, ADDRESS]
    [update] = combiner.updates
    assert combiner.tries("upload") == 1 and combiner.tries("send_update") == 3, "resent, never re-uploaded"
    assert update.correlation_id == "train-1" and update.model_id == "m0"
    assert combiner.models[update.model_update_id] == b"global model+", "the trainer's output went up"
    assert [call[0] for call in trainer.calls] == ["train", "validate"]
    [validation] = combiner.validations
    assert validation.correlation_id == "val-1" and validation.model_id == update.model_update_id
    # What the transport was given is typed: outcomes with their timings, status events by stage.
    assert isinstance(update.outcome, TrainingOutcome) and update.outcome.metadata == {"num_examples": 7}
    assert update.outcome.upload is not None and update.outcome.processing is not None
    assert all(isinstance(s, TaskStatus) for s in combiner.statuses)
    assert [(s.task.correlation_id, s.stage) for s in combiner.statuses] == [
        ("train-1", Stage.RECEIVED),
        ("train-1", Stage.STARTED),
        ("train-1", Stage.DONE),
        ("val-1", Stage.RECEIVED),
        ("val-1", Stage.STARTED),
        ("val-1", Stage.DONE),
    ]
    trained, validated = combiner.statuses[2], combiner.statuses[5]
    assert isinstance(trained.result, TrainingOutcome) and trained.result_id == update.model_update_id
    assert isinstance(validated.result, ValidationOutcome) and validated.result.metrics == validation.metrics
    assert no_fedn_wording == [], "the gRPC transport's wording was never used"


async def test_an_in_process_forward_pass_sends_the_callbacks_embeddings(
    tmp_path: Path, no_fedn_wording: list[str]
) -> None:
    """Split learning with in-process callbacks, through the real task runner (not the trainer alone)."""
    import numpy as np
    from fedclient.adapters.trainers.callback_trainer import Callbacks

    seen: list[tuple[str, bool]] = []

    def forward(client_id: str, is_sl_inference: bool) -> tuple[dict[str, object], dict[str, int]]:
        seen.append((client_id, is_sl_inference))
        return {client_id: np.full((3, 2), 0.5)}, {"num_examples": 3}

    settings = load_settings(
        {
            "combiner": ADDRESS.host,
            "combiner_port": ADDRESS.port,
            "work_dir": tmp_path / "w",
            "client_id": "cid",
        }
    )
    combiner = InMemoryCombiner()
    container = build_container(settings, callbacks=Callbacks(forward=forward, models="numpy"))
    container.connector.override(providers.Object(InMemoryConnector(combiner)))
    container.clock.override(providers.Object(FakeClock()))
    stop = asyncio.Event()
    async with client_lifecycle(container) as life:
        runner = asyncio.create_task(life.run(stop))
        task = Task(
            TaskKind.FORWARD, "m0", "s1", "fwd-1", sender_name="comb", round_id="1", sl_inference=True
        )
        combiner.submit("cid", task)
        await _until(lambda: len(combiner.updates) == 1, "the embeddings")
        stop.set()
        await asyncio.wait_for(runner, 10)
    assert seen == [("cid", True)]
    [update] = combiner.updates
    assert isinstance(update.outcome, ForwardOutcome) and update.outcome.metadata == {"num_examples": 3}
    assert [s.stage for s in combiner.statuses][-1] is Stage.DONE
    assert no_fedn_wording == [], "the gRPC transport's wording was never used"
    embeddings = tmp_path / "embeddings.npz"
    embeddings.write_bytes(combiner.models[update.model_update_id])
    with np.load(embeddings) as data:
        assert data["cid"].tolist() == [[0.5, 0.5]] * 3
