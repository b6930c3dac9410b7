"""Per-task latency of a client, measured at its ports: TaskRequest received -> result acknowledged.

``TimedConnector`` wraps the combiner connector and ``timed_factory`` the trainer
factory of one client; both report to that client's ``TaskClock``. A task's
latency runs from the moment its TaskRequest leaves ``link.tasks()`` to the
moment the combiner acknowledged its ModelUpdate (or ModelValidation /
ModelPrediction); its overhead is that minus the time spent in the trainer.
Nothing here changes what the client does.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...domain.model import (
    CombinerAddress,
    Identity,
    ModelUpdate,
    Prediction,
    Task,
    TaskStatus,
    Validation,
)
from ...domain.package import Manifest
from ...domain.ports import CombinerConnector, CombinerLink, Trainer, TrainerFactory


@dataclass(frozen=True)
class TaskTime:
    kind: str
    latency: float
    trainer: float
    # Seconds spent awaiting each combiner call during the task (status, download, upload, update...).
    calls: Mapping[str, float] = field(default_factory=dict)

    @property
    def overhead(self) -> float:
        return self.latency - self.trainer

    @property
    def own(self) -> float:
        """Overhead not spent waiting for the combiner's transfers and acknowledgement: the client's own work.

        Status reports are left out: they go out in the background, beside the task.
        """
        return self.overhead - sum(v for k, v in self.calls.items() if k != "status")


@dataclass
class TaskTimes:
    """Every finished task of every client in this process."""

    done: list[TaskTime] = field(default_factory=list)
    connected_ids: set[str] = field(default_factory=set)  # every client that connected (once each)
    combiners: set[str] = field(default_factory=set)  # every combiner a client connected to

    @property
    def connected(self) -> int:
        """Clients that have connected, each once: a reconnect is not one more (5,000 read 5,881)."""
        return len(self.connected_ids)

    def percentiles(self, attr: str = "latency", kind: str | None = None) -> dict[str, float]:
        values = sorted(getattr(t, attr) for t in self.done if kind is None or t.kind == kind)
        if not values:
            return {}
        if len(values) == 1:
            return {"p50": values[0], "p90": values[0], "p99": values[0], "max": values[0]}
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": values[-1]}


class TaskClock:
    """One client's clock: tasks in flight by correlation id, trainer time of the running task."""

    def __init__(self, times: TaskTimes) -> None:
        self._times = times
        self._started: dict[str, tuple[str, float]] = {}
        self._trainer = 0.0
        self._calls: dict[str, float] = {}

    def received(self, task: Task) -> None:
        self._started[task.correlation_id] = (task.kind.value, time.perf_counter())
        self._trainer = 0.0
        self._calls = {}

    def trained(self, seconds: float) -> None:
        self._trainer += seconds

    def called(self, name: str, seconds: float) -> None:
        self._calls[name] = self._calls.get(name, 0.0) + seconds

    def acknowledged(self, correlation_id: str) -> None:
        started = self._started.pop(correlation_id, None)
        if started is not None:
            kind, t0 = started
            now = time.perf_counter()
            self._times.done.append(TaskTime(kind, now - t0, self._trainer, dict(self._calls)))


class _TimedLink:
    def __init__(self, link: CombinerLink, clock: TaskClock) -> None:
        self._link = link
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link, name)

    async def _timed(self, name: str, coro: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await coro
        finally:
            self._clock.called(name, time.perf_counter() - t0)

    async def tasks(self) -> AsyncIterator[Task]:
        async for task in self._link.tasks():
            self._clock.received(task)
            yield task

    async def send_status(self, report: TaskStatus) -> None:
        await self._timed("status", self._link.send_status(report))

    async def download(self, model_id: str, dest: Path) -> int:
        got: int = await self._timed("download", self._link.download(model_id, dest))
        return got

    async def upload(self, model_id: str, src: Path) -> int:
        sent: int = await self._timed("upload", self._link.upload(model_id, src))
        return sent

    async def send_update(self, update: ModelUpdate) -> None:
        await self._timed("result", self._link.send_update(update))
        self._clock.acknowledged(update.correlation_id)

    async def send_validation(self, validation: Validation) -> None:
        await self._timed("result", self._link.send_validation(validation))
        self._clock.acknowledged(validation.correlation_id)

    async def send_prediction(self, prediction: Prediction) -> None:
        await self._timed("result", self._link.send_prediction(prediction))
        self._clock.acknowledged(prediction.correlation_id)


class TimedConnector:
    def __init__(self, connector: CombinerConnector, clock: TaskClock, times: TaskTimes) -> None:
        self._connector = connector
        self._clock = clock
        self._times = times

    async def connect(self, address: CombinerAddress, identity: Identity) -> CombinerLink:
        link = await self._connector.connect(address, identity)
        self._times.connected_ids.add(identity.client_id)
        self._times.combiners.add(address.target)
        return _TimedLink(link, self._clock)  # type: ignore[return-value]


class _TimedTrainer:
    def __init__(self, trainer: Trainer, clock: TaskClock) -> None:
        self._trainer = trainer
        self._clock = clock

    async def _timed(self, coro: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await coro
        finally:
            self._clock.trained(time.perf_counter() - t0)

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._timed(self._trainer.train(in_model, out_model, client_settings))
        return result

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        result: dict[str, Any] = await self._timed(self._trainer.validate(in_model, out_json))
        return result

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        result: dict[str, Any] = await self._timed(self._trainer.predict(in_model, out_json))
        return result

    async def startup(self) -> None:
        await self._trainer.startup()


def timed_factory(factory: TrainerFactory, clock: TaskClock) -> TrainerFactory:
    def build(package_dir: Path, manifest: Manifest) -> Trainer:
        return _TimedTrainer(factory(package_dir, manifest), clock)

    return build
