"""Split-learning tasks, telemetry and heartbeat usage over the real gRPC link and the sandbox combiner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.link import GrpcCombinerLink, GrpcConnector
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.model import (
    BackwardCompletion,
    CombinerAddress,
    Identity,
    ResourceUsage,
    Task,
    TaskKind,
)
from fedclient.domain.results import BackwardOutcome

ME = Identity("alice", "cid-123")


@pytest.fixture
async def combiner(tmp_path: Path) -> AsyncIterator[SandboxCombiner]:
    server = SandboxCombiner(tmp_path / "models", name="combiner-1")
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


@pytest.fixture
async def link(combiner: SandboxCombiner) -> AsyncIterator[GrpcCombinerLink]:
    host, port = combiner.address
    opened = await GrpcConnector(None, rpc_timeout=5.0, connect_timeout=2.0).connect(
        CombinerAddress(host, port), ME
    )
    yield opened
    await opened.close()


async def test_every_task_type_reaches_the_client(combiner: SandboxCombiner, link: GrpcCombinerLink) -> None:
    config = json.dumps({"is_sl_inference": "True", "round_id": "1"})
    combiner.submit_task(ME.client_id, TaskKind.FORWARD, "m1", "s1", config)
    combiner.submit_task(ME.client_id, TaskKind.BACKWARD, "grad-1", "s1", config)
    combiner.submit_task(ME.client_id, TaskKind.TRAIN, "m1", "s1", wire_type=6)  # NETWORK: nobody serves it
    stream = link.tasks()
    got: list[Task] = [await asyncio.wait_for(stream.__anext__(), 2.0) for _ in range(3)]
    await stream.aclose()
    assert [(t.kind, t.model_id) for t in got] == [
        (TaskKind.FORWARD, "m1"),
        (TaskKind.BACKWARD, "grad-1"),
        (TaskKind.UNSUPPORTED, "m1"),
    ]
    assert got[0].sl_inference is True and got[2].type_name == "NETWORK"


async def test_backward_completion_telemetry_and_heartbeat_usage_are_recorded(
    combiner: SandboxCombiner, link: GrpcCombinerLink
) -> None:
    outcome = BackwardOutcome(fetch=0.1, execute=0.5)
    await link.send_backward_completion(
        BackwardCompletion("grad-1", outcome, "combiner-1", "corr-1", "s1", task_data="{}")
    )
    meta = {
        "exec_training": 0.5,
        "processing_time": 0.5,
        "fetch_model": 0.1,
        "config": "{}",
        "status": "success",
    }
    await link.send_telemetry(ResourceUsage(cpu_percent=12.5, memory_percent=61.25))
    await link.heartbeat(ResourceUsage(cpu_percent=3.5, memory_percent=61.5))
    await link.heartbeat()
    [done] = combiner.backward_completions
    assert (done.gradient_id, done.meta, done.correlation_id, done.session_id) == (
        "grad-1",
        meta,
        "corr-1",
        "s1",
    )
    assert (done.sender_name, done.sender_client_id, done.receiver_name) == ("alice", "cid-123", "combiner-1")
    [telemetry] = combiner.telemetry
    assert telemetry.values == {"cpu_usage": 12.5, "memory_usage": 61.25} and telemetry.has_timestamp
    assert telemetry.sender_client_id == "cid-123"
    assert [(h.cpu_utilisation, h.memory_utilisation) for h in combiner.heartbeat_records] == [
        (3.5, 61.5),
        (0, 0),
    ]
