"""The gRPC link tells "never sent" from "maybe received", and probes the combiner's model store.

Same behaviour as the memory fake's: a send that could not leave is a TransientError (the
outbox sends it again), one that may have arrived is DeliveryUncertain (it does not).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from fedclient.adapters.combiner_grpc.link import GrpcCombinerLink, GrpcConnector
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.errors import DeliveryUncertain, TransientError
from fedclient.domain.model import CombinerAddress, Identity, ModelUpdate, Validation
from fedclient.domain.results import TrainingOutcome
from fedclient.testing.fakes import InMemoryCombiner, InMemoryLink

ME = Identity("alice", "cid-9")


def update(update_id: str) -> ModelUpdate:
    return ModelUpdate(
        "seed", update_id, TrainingOutcome({"num_examples": 1}, 0.1, 0.2, upload=0.1), "combiner"
    )


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[SandboxCombiner, GrpcCombinerLink]]:
    server = SandboxCombiner(tmp_path / "models")
    host, port = "127.0.0.1", await server.start("127.0.0.1", 0)
    link = await GrpcConnector(None, rpc_timeout=1.0, connect_timeout=1.0).connect(
        CombinerAddress(host, port), ME
    )
    try:
        yield server, link
    finally:
        await link.close()
        await server.stop()


async def test_has_model_on_the_wire(
    served: tuple[SandboxCombiner, GrpcCombinerLink], tmp_path: Path
) -> None:
    server, link = served
    src = tmp_path / "m.bin"
    src.write_bytes(b"x" * 3000)
    assert not await link.has_model("u1")
    await link.upload("u1", src)
    assert await link.has_model("u1")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    await link.upload("u2", empty)
    assert await link.has_model("u2"), "an empty model answers OK at once"
    assert server.attempts.count(("Download", "u1")) == 2


async def test_has_model_in_the_fake(tmp_path: Path) -> None:
    combiner = InMemoryCombiner(models={"u1": b"x"})
    link = InMemoryLink(combiner, ME)
    assert await link.has_model("u1") and not await link.has_model("u2")
    assert combiner.tries("has_model") == 2


async def test_a_send_to_a_dead_combiner_is_never_sent(
    served: tuple[SandboxCombiner, GrpcCombinerLink],
) -> None:
    server, link = served
    await server.crash()
    await asyncio.sleep(0.2)
    for call in (link.send_update(update("u1")), link.send_validation(Validation("seed", {}, "combiner"))):
        with pytest.raises(TransientError) as caught:
            await call
        assert not isinstance(caught.value, DeliveryUncertain), caught.value
    assert not server.updates and not server.validations


async def test_a_reply_that_never_comes_is_uncertain(
    served: tuple[SandboxCombiner, GrpcCombinerLink],
) -> None:
    server, link = served

    async def hang(update_id: str) -> None:
        await asyncio.sleep(5)  # received and recorded; the reply is late past the client's deadline

    server.hooks["update"] = hang
    with pytest.raises(DeliveryUncertain):
        await link.send_update(update("u1"))
    assert [u.model_update_id for u in server.updates] == ["u1"], "it did arrive"


async def test_a_call_cut_short_after_the_connection_dropped_is_uncertain(
    served: tuple[SandboxCombiner, GrpcCombinerLink],
) -> None:
    """The combiner took the request and died; the channel left READY before close() ran.

    The order the fault e2e test sometimes hit: the task stream ends, the lifecycle closes
    the link, the SendModelUpdate is still pending. It may have arrived: not sent again.
    """
    server, link = served
    arrived = asyncio.Event()

    async def hold(update_id: str) -> None:
        arrived.set()
        await asyncio.sleep(5)

    server.hooks["update"] = hold
    send = asyncio.ensure_future(link.send_update(update("u1")))
    await asyncio.wait_for(arrived.wait(), 5)
    link._channel.get_state = lambda _try_to_connect=False: grpc.ChannelConnectivity.TRANSIENT_FAILURE  # type: ignore[method-assign]
    await link.close()
    with pytest.raises(DeliveryUncertain):
        await send
    assert server.attempts.count(("SendModelUpdate", "u1")) == 1


async def test_the_fake_loses_replies_the_same_way() -> None:
    combiner = InMemoryCombiner(models={"u1": b"x"})
    combiner.lose_reply_next["send_update"] = 1
    with pytest.raises(DeliveryUncertain):
        await InMemoryLink(combiner, ME).send_update(update("u1"))
    assert len(combiner.updates) == 1 and combiner.tries("send_update") == 1
