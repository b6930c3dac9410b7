"""The real gRPC link against the real sandbox combiner on loopback: the wire contract, both ends."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.link import GrpcCombinerLink, GrpcConnector
from fedclient.adapters.combiner_grpc.vocabulary import task_of
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.errors import AuthError, ModelNotFound, StreamEnded, TransientError
from fedclient.domain.model import (
    CombinerAddress,
    Identity,
    ModelUpdate,
    Prediction,
    Stage,
    Task,
    TaskKind,
    TaskStatus,
    Validation,
)
from fedclient.domain.results import TrainingOutcome

ME = Identity("alice", "cid-123")
TOKEN = "s3cret-token"
MIB = 1 << 20


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


@pytest.fixture
async def combiner(tmp_path: Path) -> AsyncIterator[SandboxCombiner]:
    server = SandboxCombiner(tmp_path / "models", name="combiner-1")
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


async def open_link(server: SandboxCombiner, token: str | None = None, **kw: float) -> GrpcCombinerLink:
    host, port = server.address
    connector = GrpcConnector(token, rpc_timeout=5.0, connect_timeout=2.0, **kw)  # type: ignore[arg-type]
    return await connector.connect(CombinerAddress(host, port), ME)


@pytest.fixture
async def link(combiner: SandboxCombiner) -> AsyncIterator[GrpcCombinerLink]:
    opened = await open_link(combiner)
    yield opened
    await opened.close()


async def next_task(stream: AsyncIterator[Task]) -> Task:
    return await asyncio.wait_for(stream.__anext__(), 2.0)


# ------------------------------------------------------------------ transfer --


@pytest.mark.parametrize("size", [0, 1, MIB, 3 * MIB + MIB // 2])
async def test_download_streams_the_stored_model(
    combiner: SandboxCombiner, link: GrpcCombinerLink, tmp_path: Path, size: int
) -> None:
    combiner.put_model("seed", random_file(tmp_path / "seed.bin", size))
    dest = tmp_path / "in" / "model.npz"
    assert await link.download("seed", dest) == size
    assert sha256(dest) == sha256(combiner.model_path("seed"))
    assert [p.name for p in dest.parent.iterdir()] == ["model.npz"]  # no temp file left over


@pytest.mark.parametrize("size", [0, 1, 3 * MIB + MIB // 2])
async def test_upload_stores_the_model(
    combiner: SandboxCombiner, link: GrpcCombinerLink, tmp_path: Path, size: int
) -> None:
    src = random_file(tmp_path / "out.npz", size)
    assert await link.upload("update-1", src) == size
    assert sha256(combiner.model_path("update-1")) == sha256(src)
    assert sorted(p.name for p in combiner.model_dir.iterdir()) == ["update-1"]


async def test_download_of_unknown_model_is_model_not_found(link: GrpcCombinerLink, tmp_path: Path) -> None:
    dest = tmp_path / "in" / "model.npz"
    with pytest.raises(ModelNotFound, match="nope"):
        await link.download("nope", dest)
    assert list(dest.parent.iterdir()) == []


# ------------------------------------------------------------- unary results --


async def test_model_update_reaches_the_combiner(combiner: SandboxCombiner, link: GrpcCombinerLink) -> None:
    config = json.dumps({"round_id": "3", "session_id": "s1"})
    outcome = TrainingOutcome({"num_examples": 42}, fetch=0.25, execute=0.5, upload=0.125)
    await link.send_update(ModelUpdate("m0", "u1", outcome, "combiner-1", "corr-1", "s1", task_data=config))
    [update] = await combiner.wait_for_updates(["corr-1"], 1.0)
    assert (update.model_id, update.model_update_id, update.correlation_id) == ("m0", "u1", "corr-1")
    assert (update.sender_name, update.sender_client_id, update.receiver_name) == (
        "alice",
        "cid-123",
        "combiner-1",
    )
    assert update.meta["training_metadata"]["num_examples"] == 42
    assert json.loads(update.meta["config"])["round_id"] == "3"
    assert (update.meta["fetch_model"], update.meta["upload_model"], update.meta["processing_time"]) == (
        0.25,
        0.125,
        0.875,
    )
    assert update.timestamp.endswith("+00:00")  # str(datetime.now(UTC)), as FEDn


async def test_validation_reaches_the_combiner(combiner: SandboxCombiner, link: GrpcCombinerLink) -> None:
    await link.send_validation(Validation("m1", {"test_accuracy": 0.9}, "combiner-1", "corr-2", "s1"))
    [record] = await combiner.wait_for_validations(["corr-2"], 1.0)
    assert record.metrics == {"test_accuracy": 0.9}
    assert (record.model_id, record.session_id, record.sender_client_id) == ("m1", "s1", "cid-123")
    assert record.receiver_name == "combiner-1"


async def test_prediction_reaches_the_combiner(combiner: SandboxCombiner, link: GrpcCombinerLink) -> None:
    await link.send_prediction(Prediction("m1", {"y": [1, 2]}, "combiner-1", "corr-3", "pred-9"))
    [record] = await combiner.wait_for_predictions(["corr-3"], 1.0)
    assert (record.output, record.prediction_id, record.sender_client_id) == (
        {"y": [1, 2]},
        "pred-9",
        "cid-123",
    )


async def test_status_and_heartbeat_are_recorded(combiner: SandboxCombiner, link: GrpcCombinerLink) -> None:
    await link.send_status(TaskStatus(Stage.RECEIVED, task_of(TaskKind.TRAIN, "m0", "s1")))
    await link.heartbeat()
    [status] = combiner.statuses
    assert (status.text, status.level, status.type) == (
        "Received request from combiner.",
        "AUDIT",
        "MODEL_UPDATE",
    )
    assert (status.sender_name, status.sender_client_id, status.session_id) == ("alice", "cid-123", "s1")
    assert "cid-123" in combiner.heartbeats


# ------------------------------------------------------------------ tasks --


async def test_tasks_arrive_as_domain_tasks(combiner: SandboxCombiner, link: GrpcCombinerLink) -> None:
    config = json.dumps({"round_id": "1", "client_settings": {"lr": 0.1}})
    train = combiner.submit_task("cid-123", TaskKind.TRAIN, "m0", "s1", config)
    check = combiner.submit_task("cid-123", TaskKind.VALIDATE, "m0", "s1")
    predict = combiner.submit_task("cid-123", TaskKind.PREDICT, "m0", "pred-1", '{"presigned_url": "x"}')
    combiner.submit_task("someone-else", TaskKind.TRAIN, "m0")
    stream = link.tasks()
    try:
        got = [await next_task(stream) for _ in range(3)]
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert [t.kind for t in got] == [TaskKind.TRAIN, TaskKind.VALIDATE, TaskKind.PREDICT]
    assert [t.correlation_id for t in got] == [train, check, predict]
    assert got[0].round_id == "1" and got[0].client_settings == {"lr": 0.1} and got[0].data == config
    assert all(t.sender_name == "combiner-1" and t.model_id == "m0" for t in got)
    assert got[2].session_id == "pred-1"
    [(_, metadata)] = [m for m in combiner.metadata_seen if m[0] == "TaskStream"]
    assert metadata["client"] == "cid-123"
    assert metadata["grpc-server"] == "127.0.0.1"
    assert "authorization" not in metadata


async def test_online_after_subscribe_and_heartbeat(
    combiner: SandboxCombiner, link: GrpcCombinerLink
) -> None:
    stream = link.tasks()
    reader = asyncio.ensure_future(stream.__anext__())
    await link.heartbeat()
    assert await combiner.wait_for_clients(1, 2.0) == {"cid-123"}
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await stream.aclose()  # type: ignore[attr-defined]


async def test_kicked_stream_raises_stream_ended_and_tasks_survive(
    combiner: SandboxCombiner, link: GrpcCombinerLink
) -> None:
    stream = link.tasks()
    reader = asyncio.ensure_future(stream.__anext__())
    await link.heartbeat()
    await combiner.wait_for_clients(1, 2.0)
    await combiner.kick_clients()
    with pytest.raises(StreamEnded):
        await asyncio.wait_for(reader, 2.0)
    assert combiner.online_clients() == set()
    # Queued while we were away: delivered on the next subscription, like FEDn.
    queued = combiner.submit_task("cid-123", TaskKind.VALIDATE, "m2")
    again = link.tasks()
    try:
        assert (await next_task(again)).correlation_id == queued
    finally:
        await again.aclose()  # type: ignore[attr-defined]


# --------------------------------------------------------------- connection --


async def test_unreachable_combiner_is_transient(tmp_path: Path) -> None:
    server = SandboxCombiner(tmp_path / "m")
    port = await server.start()
    await server.stop()  # the port is now closed
    connector = GrpcConnector(None, connect_timeout=0.3)
    with pytest.raises(TransientError, match=f"127.0.0.1:{port}"):
        await connector.connect(CombinerAddress("127.0.0.1", port), ME)


async def test_closed_link_refuses_calls(link: GrpcCombinerLink) -> None:
    await link.close()
    await link.close()
    with pytest.raises(TransientError, match="closed"):
        await link.heartbeat()


# -------------------------------------------------------------------- auth --


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[SandboxCombiner]:
    server = SandboxCombiner(tmp_path / "models", require_token=TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.mark.parametrize(("token", "reason"), [(None, "Token is missing"), ("wrong", "Invalid token")])
async def test_bad_token_is_auth_error(guarded: SandboxCombiner, token: str | None, reason: str) -> None:
    bad = await open_link(guarded, token)
    try:
        with pytest.raises(AuthError, match=reason) as heartbeat_error:
            await bad.heartbeat()
        with pytest.raises(AuthError, match=reason):
            await next_task(bad.tasks())
        assert "\n" not in str(heartbeat_error.value)
        assert "wrong" not in str(heartbeat_error.value)
    finally:
        await bad.close()


async def test_right_token_works_on_every_call(guarded: SandboxCombiner, tmp_path: Path) -> None:
    good = await open_link(guarded, TOKEN)
    try:
        await good.heartbeat()
        await good.upload("m", random_file(tmp_path / "m.bin", 1000))
        assert await good.download("m", tmp_path / "back.bin") == 1000
        guarded.submit_task("cid-123", TaskKind.VALIDATE, "m")
        assert (await next_task(good.tasks())).model_id == "m"
    finally:
        await good.close()
    assert {m for m, _ in guarded.metadata_seen} == {"SendHeartbeat", "Upload", "Download", "TaskStream"}
    assert all(md["authorization"] == f"Bearer {TOKEN}" for _, md in guarded.metadata_seen)
