"""The unit tests' world: one client built by the app's container over the in-memory fakes
(providers overridden with ``providers.Object``), and the tasks they send it.

The ``archive`` fixture (a package holding MANIFEST) is in tests/unit/conftest.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dependency_injector import providers
from fedclient.adapters.combiner_grpc.vocabulary import StatusLine, outcome_meta, status_line, task_of
from fedclient.adapters.outbox_store import ProcessOutboxStore
from fedclient.adapters.package_cache import DiskPackageCache
from fedclient.app.client_graph import ClientGraph
from fedclient.app.container import Container, build_container
from fedclient.app.setting_names import spell
from fedclient.app.settings_load import load_settings
from fedclient.domain.credentials import Credentials
from fedclient.domain.lifecycle import ClientPlan, Lifecycle
from fedclient.domain.links import LinkHolder
from fedclient.domain.model import (
    Assignment,
    AssignmentStatus,
    BackwardCompletion,
    CombinerAddress,
    Identity,
    ModelUpdate,
    Task,
    TaskKind,
    TaskStatus,
)
from fedclient.domain.observe import NULL_OBSERVER, Observer
from fedclient.domain.outbox import OutboxStore
from fedclient.domain.ports import Clock, Ids, PackageUnpacker, Random, Trainer, TrainerFactory
from fedclient.domain.tasks import TaskRunner
from fedclient.domain.usage import UsageProbe
from fedclient.testing.fakes import (
    CountingIds,
    FakeClock,
    FakeScratch,
    InMemoryCombiner,
    InMemoryConnector,
    InMemoryDiscovery,
    InMemoryPackageSource,
    InMemoryTrainer,
    InMemoryTrainerFactory,
    InMemoryUnpacker,
    SeededRandom,
)

COMBINER = CombinerAddress("127.0.0.1", 12080)
ASSIGNED = Assignment(
    AssignmentStatus.ASSIGNED, combiner=COMBINER, client_id="cid-1", helper_type="numpyhelper"
)
MANIFEST = {"entry_points": {"train": {"command": "python train.py"}, "validate": {"command": "python v.py"}}}
ROUND_CONFIG = json.dumps({"round_id": "1", "session_id": "s1", "client_settings": {"lr": "0.1"}})


class World:
    """The fakes the client runs over, the container that wires them, and the client (``life``).

    Any port can be given instead of the world's fake (``clock=``, ``observer=``, ``unpacker=``,
    ``trainer_factory=``, ``outbox_store=``, ``usage_probe=``); the other keywords are the plan's.
    """

    def __init__(
        self,
        tmp_path: Path,
        archive: Path,
        *answers: Assignment,
        checksum: str | None = "auto",
        trainer: InMemoryTrainer | None = None,
        credentials: Credentials | None = None,
        clock: FakeClock | None = None,
        observer: Observer = NULL_OBSERVER,
        unpacker: PackageUnpacker | None = None,
        trainer_factory: TrainerFactory | None = None,
        outbox_store: OutboxStore | None = None,
        usage_probe: UsageProbe | None = None,
        **plan_kw: Any,
    ) -> None:
        self.combiner = InMemoryCombiner()
        self.combiner.models["seed"] = b"seed"
        self.discovery = InMemoryDiscovery(*(answers or (ASSIGNED,)))
        digest = hashlib.sha256(archive.read_bytes()).hexdigest() if checksum == "auto" else checksum
        self.source = InMemoryPackageSource(archive, digest)
        self.trainer = trainer or InMemoryTrainer(num_examples=42)
        self.clock = clock or FakeClock()
        self.credentials = credentials or Credentials(None)
        # The app names settings in messages as its users set them (build_plan does the same).
        plan_kw.setdefault("setting_names", spell)
        plan = ClientPlan(identity=Identity("alice", "cid-0"), work_dir=tmp_path / "work", **plan_kw)
        self.container: Container = build_container(
            load_settings({"api_url": "localhost", "work_dir": plan.work_dir})
        )
        fakes: dict[str, object] = {
            "plan": plan,
            "discovery": self.discovery,
            "package_source": self.source,
            "unpacker": unpacker or InMemoryUnpacker(),
            "connector": InMemoryConnector(self.combiner, self.credentials),
            "trainer_factory": trainer_factory or InMemoryTrainerFactory(self.trainer),
            "clock": self.clock,
            "observer": observer,
            "credentials": self.credentials,
            "usage_probe": usage_probe,
            "package_cache": DiskPackageCache(),
            "outbox_store": outbox_store or ProcessOutboxStore(plan.work_dir / "outbox"),
            "scratch": FakeScratch(),
            "ids": CountingIds(),
            "random": SeededRandom(),
        }
        for name, fake in fakes.items():
            getattr(self.container, name).override(providers.Object(fake))
        self.life: Lifecycle = self.container.lifecycle()
        self.stop = asyncio.Event()

    async def run_until(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        runner = asyncio.create_task(self.life.run(self.stop))
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    if runner.done():
                        runner.result()
                        raise AssertionError("lifecycle ended before the condition held")
                    await asyncio.sleep(0.005)
        finally:
            self.stop.set()
            await asyncio.wait_for(runner, 5)


def train_task(model: str = "seed", corr: str = "c1") -> Task:
    return task_of(TaskKind.TRAIN, model, "s1", corr, ROUND_CONFIG, "combiner-0")


def lines(statuses: list[TaskStatus]) -> list[StatusLine]:
    """The status reports as the gRPC transport phrases them (FEDn's texts, levels and types)."""
    return [status_line(s) for s in statuses]


def meta(result: ModelUpdate | BackwardCompletion) -> dict[str, Any]:
    """A result's meta in FEDn's layout, as the gRPC transport sends it."""
    return outcome_meta(result.outcome, result.task_data)


def task_runner(
    links: LinkHolder, trainer: Trainer, work_dir: Path, *, clock: Clock, ids: Ids, random: Random
) -> TaskRunner:
    """A task runner alone over ``links``, from the app's client graph (its outbox in work_dir/tasks)."""
    graph = ClientGraph()
    plan = ClientPlan(identity=Identity("site", "cid-1"), work_dir=work_dir)
    ports = {
        "plan": plan,
        "links": links,
        "clock": clock,
        "ids": ids,
        "random": random,
        "scratch": FakeScratch(),
        "outbox_store": ProcessOutboxStore(work_dir / "tasks" / "outbox"),
        "client_id": lambda: "",
    }
    for name, port in ports.items():
        getattr(graph, name).override(providers.Object(port))
    runner: TaskRunner = graph.task_runner()(trainer=trainer)
    return runner
