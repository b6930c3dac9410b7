"""Transfer progress through the observer port: the real gRPC link and the in-memory fake report alike."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.link import GrpcConnector
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.errors import ModelNotFound
from fedclient.domain.model import CombinerAddress, Identity
from fedclient.domain.observe import TransferKind
from fedclient.domain.ports import CombinerLink
from fedclient.testing.fakes import InMemoryCombiner, InMemoryConnector, RecordingObserver

ME = Identity("alice", "cid-1")
SIZE = 2 * (1 << 20) + 5


@pytest.fixture(params=["grpc", "memory"])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[CombinerLink, RecordingObserver, Path]]:
    seed = tmp_path / "seed.bin"
    seed.write_bytes(os.urandom(SIZE))
    observer = RecordingObserver()
    if request.param == "grpc":
        server = SandboxCombiner(tmp_path / "models", name="combiner-1")
        await server.start("127.0.0.1", 0)
        server.put_model("seed", seed)
        host, port = server.address
        link: CombinerLink = await GrpcConnector(None, rpc_timeout=5.0, observer=observer).connect(
            CombinerAddress(host, port), ME
        )
        yield link, observer, tmp_path
        await link.close()
        await server.stop()
    else:
        combiner = InMemoryCombiner()
        combiner.models["seed"] = seed.read_bytes()
        link = await InMemoryConnector(combiner, observer=observer).connect(CombinerAddress("h", 1), ME)
        yield link, observer, tmp_path


async def test_download_and_upload_report_their_bytes(
    world: tuple[CombinerLink, RecordingObserver, Path],
) -> None:
    link, observer, tmp_path = world
    await link.download("seed", tmp_path / "in.bin")
    await link.upload("up-1", tmp_path / "in.bin")
    starts = [e for e in observer.events if e[0] == "transfer"]
    assert starts == [
        ("transfer", TransferKind.MODEL_DOWNLOAD, "seed", None),  # the combiner does not send a size
        ("transfer", TransferKind.MODEL_UPLOAD, "up-1", SIZE),
    ]
    down_end = observer.events.index(("finish", True))
    down_bytes = sum(int(e[1]) for e in observer.events[:down_end] if e[0] == "advance")
    up_bytes = sum(int(e[1]) for e in observer.events[down_end:] if e[0] == "advance")
    assert (down_bytes, up_bytes) == (SIZE, SIZE)
    assert observer.events[-1] == ("finish", True)


# The gRPC link learns that a model is missing from the stream it opened; the fake knows before.
MISSING_MODEL_EVENTS = {
    "grpc": [("transfer", TransferKind.MODEL_DOWNLOAD, "nope", None), ("finish", False)],
    "memory": [],
}


async def test_a_missing_model_ends_its_transfer_as_failed_or_never_starts(
    request: pytest.FixtureRequest, world: tuple[CombinerLink, RecordingObserver, Path]
) -> None:
    link, observer, tmp_path = world
    with pytest.raises(ModelNotFound):
        await link.download("nope", tmp_path / "x.bin")
    assert observer.events == MISSING_MODEL_EVENTS[request.node.callspec.params["world"]]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("x.bin")], "no file, whole or partial"
