"""The composition root wires real adapters, and tests swap in fakes with provider overrides."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from dependency_injector import providers
from fedclient.adapters.combiner_grpc.link import GrpcConnector
from fedclient.adapters.controller_http import HttpxDiscovery, HttpxPackageSource
from fedclient.adapters.memory import (
    FakeClock,
    InMemoryCombiner,
    InMemoryConnector,
    InMemoryDiscovery,
    InMemoryTrainer,
    InMemoryTrainerFactory,
    InMemoryUnpacker,
)
from fedclient.adapters.package_archive import TarPackageUnpacker
from fedclient.app.container import build_container
from fedclient.app.settings_load import load_settings
from fedclient.domain.model import Assignment, AssignmentStatus, CombinerAddress, Task, TaskKind


def test_container_builds_the_real_adapters(tmp_path: Path) -> None:
    settings = load_settings(
        {"api_url": "localhost", "api_port": 8092, "work_dir": tmp_path, "token": "tok-1234"}
    )
    container = build_container(settings)
    life = container.lifecycle()
    assert isinstance(life.discovery, HttpxDiscovery)
    assert isinstance(life.package_source, HttpxPackageSource)
    assert isinstance(life.connector, GrpcConnector)
    assert isinstance(life.unpacker, TarPackageUnpacker)
    assert life.discovery.endpoint.url("api/v1/clients/add") == "http://localhost:8092/api/v1/clients/add"


def test_direct_combiner_mode_builds_no_controller_adapters(tmp_path: Path) -> None:
    (tmp_path / "fedn.yaml").write_text("entry_points: {train: {command: python t.py}}\n")
    settings = load_settings(
        {
            "combiner": "127.0.0.1",
            "combiner_port": 12080,
            "local_package": tmp_path,
            "work_dir": tmp_path / "w",
        }
    )
    life = build_container(settings).lifecycle()
    assert life.discovery is None and life.package_source is None


async def test_overridden_container_runs_a_task_with_fakes(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "fedn.yaml").write_text(json.dumps({"entry_points": {"train": {"command": "python t.py"}}}))
    settings = load_settings(
        {"api_url": "localhost", "local_package": pkg, "work_dir": tmp_path / "w", "client_id": "cid"}
    )
    combiner = InMemoryCombiner(models={"m0": b"model"})
    container = build_container(settings)
    container.discovery.override(
        providers.Object(
            InMemoryDiscovery(Assignment(AssignmentStatus.ASSIGNED, combiner=CombinerAddress("h", 1)))
        )
    )
    container.connector.override(providers.Object(InMemoryConnector(combiner)))
    container.unpacker.override(providers.Object(InMemoryUnpacker()))
    container.trainer_factory.override(providers.Object(InMemoryTrainerFactory(InMemoryTrainer())))
    container.clock.override(providers.Object(FakeClock()))
    life = container.lifecycle()
    stop = asyncio.Event()
    combiner.submit("cid", Task(TaskKind.TRAIN, "m0", "s", "c", '{"round_id": "1"}', "comb"))
    runner = asyncio.create_task(life.run(stop))
    async with asyncio.timeout(5):
        while not combiner.updates:
            await asyncio.sleep(0.01)
    stop.set()
    await runner
    assert combiner.updates[0].meta["training_metadata"] == {"num_examples": 10}
