"""The sandbox combiner's FEDn behaviours seen through raw stubs, and TLS end to end."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from fedclient.adapters.combiner_grpc.generated import fedn_pb2 as pb
from fedclient.adapters.combiner_grpc.generated import fedn_pb2_grpc as rpc
from fedclient.adapters.combiner_grpc.link import GrpcConnector
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.errors import AuthError, ConfigError
from fedclient.domain.model import CombinerAddress, Identity

ME = Identity("alice", "cid-1")


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[tuple[SandboxCombiner, grpc.aio.Channel]]:
    server = SandboxCombiner(tmp_path / "models", require_token="t")
    port = await server.start()
    chan = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield server, chan
    await chan.close()
    await server.stop()


AUTH = (("authorization", "Bearer t"), ("client", "cid-1"))


async def test_unknown_model_answers_unknown_then_failed(
    channel: tuple[SandboxCombiner, grpc.aio.Channel],
) -> None:
    stub = rpc.ModelServiceStub(channel[1])
    replies = [r async for r in stub.Download(pb.ModelRequest(id="nope"), metadata=AUTH, timeout=2)]
    assert [r.status for r in replies] == [pb.UNKNOWN, pb.FAILED]


async def test_upload_without_terminator_stores_nothing(
    channel: tuple[SandboxCombiner, grpc.aio.Channel],
) -> None:
    server, chan = channel

    async def chunks() -> AsyncIterator[pb.ModelRequest]:
        yield pb.ModelRequest(id="half", data=b"abc", status=pb.IN_PROGRESS)

    reply = await rpc.ModelServiceStub(chan).Upload(chunks(), metadata=AUTH, timeout=2)
    assert reply.status == pb.FAILED
    assert list(server.model_dir.iterdir()) == []


async def test_task_stream_requires_client_metadata(
    channel: tuple[SandboxCombiner, grpc.aio.Channel],
) -> None:
    call = rpc.CombinerStub(channel[1]).TaskStream(
        pb.ClientAvailableMessage(sender=pb.Client(client_id="cid-1", role=pb.CLIENT)),
        metadata=(("authorization", "Bearer t"),),
        timeout=2,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_wrong_scheme_is_refused_like_fedn(channel: tuple[SandboxCombiner, grpc.aio.Channel]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rpc.ConnectorStub(channel[1]).SendHeartbeat(
            pb.Heartbeat(), metadata=(("authorization", "Token t"),), timeout=2
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == "Invalid token scheme, expected Bearer"


# --------------------------------------------------------------------- TLS --


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_tls_with_custom_root_carries_the_token(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    server = SandboxCombiner(
        tmp_path / "models", require_token="t", tls=(key.read_bytes(), cert.read_bytes())
    )
    port = await server.start()
    try:
        good = await GrpcConnector("t", root_cert_path=cert, connect_timeout=2).connect(
            CombinerAddress("localhost", port), ME
        )
        await good.heartbeat()  # FEDn would have dropped the token here (custom root CA)
        await good.close()
        bad = await GrpcConnector("x", root_cert_path=cert, connect_timeout=2).connect(
            CombinerAddress("localhost", port), ME
        )
        with pytest.raises(AuthError, match="Invalid token"):
            await bad.heartbeat()
        await bad.close()
    finally:
        await server.stop()
    assert [md["authorization"] for _, md in server.metadata_seen] == ["Bearer t", "Bearer x"]


async def test_untrusted_certificate_is_a_config_error_not_a_retry(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    key, cert = certificate
    server = SandboxCombiner(tmp_path / "models", tls=(key.read_bytes(), cert.read_bytes()))
    port = await server.start()
    try:
        # no root given: the system CAs do not know our self-signed certificate. (An IP, not
        # localhost: gRPC reports only the last address tried, and ::1 just refuses.)
        connector = GrpcConnector(None, force_tls=True, connect_timeout=1)
        with pytest.raises(ConfigError, match=r"certificate verify failed.*FEDN_GRPC_ROOT_CERT_PATH"):
            await connector.connect(CombinerAddress("127.0.0.1", port), ME)
    finally:
        await server.stop()
