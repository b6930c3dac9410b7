"""Download/upload edge cases a well-behaved combiner never produces, against a scripted ModelService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from fedclient.adapters.combiner_grpc.generated import fedn_pb2 as pb
from fedclient.adapters.combiner_grpc.generated import fedn_pb2_grpc as rpc
from fedclient.adapters.combiner_grpc.link import GrpcCombinerLink, GrpcConnector
from fedclient.domain.errors import ModelNotFound, TransientError
from fedclient.domain.model import CombinerAddress, Identity

HANG = "hang"


class ScriptedModels(rpc.ModelServiceServicer):
    """Plays back a fixed download script; answers every upload with a fixed reply."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.upload_reply = pb.ModelResponse(status=pb.OK)
        self.uploaded: list[pb.ModelRequest] = []

    async def Download(self, request: pb.ModelRequest, context: Any) -> AsyncIterator[pb.ModelResponse]:
        for step in self.script:
            if step == HANG:
                await asyncio.sleep(30)
            else:
                yield step

    async def Upload(self, request_iterator: Any, context: Any) -> pb.ModelResponse:
        async for request in request_iterator:
            self.uploaded.append(request)
        return self.upload_reply


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedModels, int]]:
    server = grpc.aio.server()
    models = ScriptedModels()
    rpc.add_ModelServiceServicer_to_server(models, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield models, port
    await server.stop(grace=None)


@pytest.fixture
async def link(scripted: tuple[ScriptedModels, int]) -> AsyncIterator[GrpcCombinerLink]:
    connector = GrpcConnector(None, connect_timeout=2.0, progress_timeout=0.3, unknown_timeout=0.3)
    opened = await connector.connect(CombinerAddress("127.0.0.1", scripted[1]), Identity("a", "cid"))
    yield opened
    await opened.close()


def chunk(data: bytes, status: int = pb.IN_PROGRESS) -> pb.ModelResponse:
    return pb.ModelResponse(id="m", data=data, status=status)  # type: ignore[arg-type]


async def test_in_progress_ok_is_ignored_and_ok_finishes(
    scripted: tuple[ScriptedModels, int], link: GrpcCombinerLink, tmp_path: Path
) -> None:
    scripted[0].script = [
        chunk(b"ab"),
        chunk(b"zz", pb.IN_PROGRESS_OK),
        chunk(b"cd"),
        chunk(b"", pb.OK),
        HANG,
    ]
    assert await link.download("m", tmp_path / "m") == 4
    assert (tmp_path / "m").read_bytes() == b"abcd"


async def test_unknown_until_the_deadline_is_model_not_found(
    scripted: tuple[ScriptedModels, int], link: GrpcCombinerLink, tmp_path: Path
) -> None:
    scripted[0].script = [chunk(b"", pb.UNKNOWN), HANG]
    with pytest.raises(ModelNotFound, match="UNKNOWN"):
        await link.download("m", tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


async def test_unknown_then_data_still_downloads(
    scripted: tuple[ScriptedModels, int], link: GrpcCombinerLink, tmp_path: Path
) -> None:
    scripted[0].script = [chunk(b"", pb.UNKNOWN), chunk(b"xy"), chunk(b"", pb.OK)]
    assert await link.download("m", tmp_path / "m") == 2


async def test_stalled_download_is_transient_and_leaves_nothing(
    scripted: tuple[ScriptedModels, int], link: GrpcCombinerLink, tmp_path: Path
) -> None:
    scripted[0].script = [chunk(b"partial"), HANG]
    with pytest.raises(TransientError, match="stalled"):
        await link.download("m", tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


async def test_stream_ending_without_ok_is_transient(
    scripted: tuple[ScriptedModels, int], link: GrpcCombinerLink, tmp_path: Path
) -> None:
    scripted[0].script = [chunk(b"partial")]
    with pytest.raises(TransientError, match="before the combiner said OK"):
        await link.download("m", tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


async def test_close_during_download_is_transient_not_cancelled(
    scripted: tuple[ScriptedModels, int], link: GrpcCombinerLink, tmp_path: Path
) -> None:
    scripted[0].script = [chunk(b"partial"), HANG]
    running = asyncio.ensure_future(link.download("m", tmp_path / "m"))
    await asyncio.sleep(0.05)
    await link.close()
    with pytest.raises(TransientError, match="closed"):
        await running
    assert list(tmp_path.iterdir()) == []


async def test_rejected_upload_is_transient(
    scripted: tuple[ScriptedModels, int], link: GrpcCombinerLink, tmp_path: Path
) -> None:
    scripted[0].upload_reply = pb.ModelResponse(id="u", status=pb.FAILED, message="disk full")
    src = tmp_path / "u"
    src.write_bytes(b"x" * 10)
    with pytest.raises(TransientError, match="FAILED disk full"):
        await link.upload("u", src)


async def test_upload_wire_shape(scripted: tuple[ScriptedModels, int], tmp_path: Path) -> None:
    connector = GrpcConnector(None, chunk_size=4)
    link = await connector.connect(CombinerAddress("127.0.0.1", scripted[1]), Identity("a", "cid"))
    src = tmp_path / "u"
    src.write_bytes(b"0123456789")
    try:
        assert await link.upload("u", src) == 10
    finally:
        await link.close()
    sent = scripted[0].uploaded
    assert [(r.id, r.data, r.status) for r in sent] == [
        ("u", b"0123", pb.IN_PROGRESS),
        ("u", b"4567", pb.IN_PROGRESS),
        ("u", b"89", pb.IN_PROGRESS),
        ("u", b"", pb.OK),
    ]
