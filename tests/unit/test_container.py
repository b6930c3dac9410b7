"""The composition root wires real adapters, and tests swap in fakes with provider overrides."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

from dependency_injector import providers
from fedclient.adapters.combiner_grpc.link import GrpcConnector
from fedclient.adapters.controller_http import HttpxDiscovery, HttpxPackageSource
from fedclient.adapters.package_archive import TarPackageUnpacker
from fedclient.app.container import build_container, client_lifecycle
from fedclient.app.settings_load import load_settings
from fedclient.domain.model import Assignment, AssignmentStatus, CombinerAddress, Identity, Task, TaskKind
from fedclient.testing.fakes import (
    FakeClock,
    InMemoryCombiner,
    InMemoryConnector,
    InMemoryDiscovery,
    InMemoryTrainer,
    InMemoryTrainerFactory,
    InMemoryUnpacker,
    RecordingObserver,
)


async def test_container_builds_the_real_adapters(tmp_path: Path) -> None:
    settings = load_settings(
        {"api_url": "localhost", "api_port": 8092, "work_dir": tmp_path, "token": "tok-1234"}
    )
    async with client_lifecycle(build_container(settings)) as life:
        pass
    assert isinstance(life.assigner.discovery, HttpxDiscovery)
    assert isinstance(life.package.source, HttpxPackageSource)
    assert isinstance(life.supervisor.connection.connector, GrpcConnector)
    assert isinstance(life.package.unpacker, TarPackageUnpacker)
    assert (
        life.assigner.discovery.endpoint.url("api/v1/clients/add")
        == "http://localhost:8092/api/v1/clients/add"
    )


async def test_direct_combiner_mode_builds_no_controller_adapters(tmp_path: Path) -> None:
    (tmp_path / "fedn.yaml").write_text("entry_points: {train: {command: python t.py}}\n")
    settings = load_settings(
        {
            "combiner": "127.0.0.1",
            "combiner_port": 12080,
            "local_package": tmp_path,
            "work_dir": tmp_path / "w",
        }
    )
    async with client_lifecycle(build_container(settings)) as life:
        assert life.assigner.discovery is None and life.package.source is None


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
    life = await container.lifecycle()
    stop = asyncio.Event()
    combiner.submit("cid", Task(TaskKind.TRAIN, "m0", "s", "c", '{"round_id": "1"}', "comb"))
    runner = asyncio.create_task(life.run(stop))
    async with asyncio.timeout(5):
        while not combiner.updates:
            await asyncio.sleep(0.01)
    stop.set()
    await runner
    assert combiner.updates[0].outcome.metadata == {"num_examples": 10}


async def test_the_http_clients_the_container_opened_are_closed_when_the_client_ends(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "api_url": "localhost",
            "work_dir": tmp_path,
            "refresh_token": "r-0123456789",
            "refresh_token_uri": "http://localhost/api/auth/refresh",
        }
    )
    container = build_container(settings)
    async with client_lifecycle(container) as life:
        assert life.assigner.discovery is not None and life.package.source is not None
        opened = [life.assigner.discovery.client(), life.package.source.client()]
        assert not any(client.is_closed for client in opened)
    assert all(client.is_closed for client in opened), "shutdown_resources() closed both httpx clients"


async def test_each_client_built_from_one_container_has_parts_of_its_own(tmp_path: Path) -> None:
    # simulate builds thousands of clients from one container, each with its plan as a call argument
    settings = load_settings({"api_url": "localhost", "work_dir": tmp_path, "client_id": "c", "name": "n"})
    container = build_container(settings)
    plans = [dataclasses.replace(container.plan(), work_dir=tmp_path / f"client-{i}") for i in range(2)]
    first, second = [await container.lifecycle(plan=plan, usage_probe=None) for plan in plans]
    assert (first.plan, second.plan) == (plans[0], plans[1])
    for part in ("supervisor", "outbox", "assigner", "package", "state", "links"):
        assert getattr(first, part) is not getattr(second, part), part
    assert first.supervisor.connection.connector is second.supervisor.connection.connector  # shared adapters
    assert first.assigner.plan is plans[0] and second.package.plan.work_dir == tmp_path / "client-1"
    await container.shutdown_resources()


async def test_the_operator_views_open_with_the_kept_identity_and_close_with_the_client(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        {"api_url": "localhost", "work_dir": tmp_path, "client_id": "cid", "name": "site"}
    )
    events: list[str] = []
    board = RecordingObserver()

    @contextlib.contextmanager
    def views(identity: Identity) -> Iterator[RecordingObserver]:
        events.append(f"open {identity.name}/{identity.client_id}")
        yield board
        events.append("closed")

    container = build_container(settings)
    async with client_lifecycle(container, views) as life:
        assert events == ["open site/cid"]
        assert container.observer() is board and life.supervisor.connection.observer is board
    assert events == ["open site/cid", "closed"], "shutdown_resources() closed the views"
