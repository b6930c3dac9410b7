"""TLS against the sandbox servers with certificates made in the test (trustme).

gRPC to the combiner and https to the controller: verification on by default (an unknown
CA is refused), a wrong CA refused, a custom CA accepted, mutual TLS accepted with a client
certificate and refused without one, and the explicit insecure opt-out.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from fedclient.adapters import plaintext
from fedclient.adapters.combiner_grpc.link import GrpcConnector
from fedclient.adapters.controller_http import ControllerEndpoint, HttpxDiscovery
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.adapters.sandbox.controller import SandboxController
from fedclient.domain.errors import ConfigError, TransientError
from fedclient.domain.model import (
    Assignment,
    AssignmentRequest,
    AssignmentStatus,
    CombinerAddress,
    Identity,
    PackageMode,
)

ME = Identity("alice", "cid-tls")


class Pki:
    def __init__(self, tmp: Path) -> None:
        self.ca, self.other_ca = trustme.CA(), trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.client = self.ca.issue_cert("client@site-a")
        self.ca_file, self.other_ca_file = tmp / "ca.pem", tmp / "other-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.other_ca.cert_pem.write_to_path(str(self.other_ca_file))
        self.client_cert, self.client_key = tmp / "client.pem", tmp / "client.key"
        self.client.cert_chain_pems[0].write_to_path(str(self.client_cert))
        self.client.private_key_pem.write_to_path(str(self.client_key))

    def server_pair(self) -> tuple[bytes, bytes]:
        chain = b"".join(blob.bytes() for blob in self.server.cert_chain_pems)
        return self.server.private_key_pem.bytes(), chain


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def _combiner(tmp: Path, pki: Pki, mtls: bool) -> SandboxCombiner:
    combiner = SandboxCombiner(
        tmp / "models", tls=pki.server_pair(), client_ca=pki.ca.cert_pem.bytes() if mtls else None
    )
    await combiner.start("127.0.0.1", 0)
    return combiner


@pytest.fixture
async def tls_combiner(tmp_path: Path, pki: Pki) -> AsyncIterator[SandboxCombiner]:
    combiner = await _combiner(tmp_path, pki, mtls=False)
    yield combiner
    await combiner.stop()


@pytest.fixture
async def mtls_combiner(tmp_path: Path, pki: Pki) -> AsyncIterator[SandboxCombiner]:
    combiner = await _combiner(tmp_path, pki, mtls=True)
    yield combiner
    await combiner.stop()


async def _heartbeat(connector: GrpcConnector, combiner: SandboxCombiner) -> None:
    link = await connector.connect(CombinerAddress(*combiner.address), ME)
    try:
        await link.heartbeat()
    finally:
        await link.close()


# What the combiner saw of an accepted heartbeat: over TLS, and whose certificate under mTLS.
OVER_TLS = [("SendHeartbeat", "ssl", ())]
OVER_MTLS = [("SendHeartbeat", "ssl", ("client@site-a",))]


def _accepted(combiner: SandboxCombiner) -> list[tuple[str, str, tuple[str, ...]]]:
    """How the combiner's transport saw the calls, once it recorded the heartbeat."""
    assert set(combiner.heartbeats) == {ME.client_id}
    return list(combiner.peers_seen)


async def test_grpc_verification_is_on_by_default(tls_combiner: SandboxCombiner) -> None:
    with pytest.raises(ConfigError, match=r"TLS handshake with combiner .* failed"):
        await _heartbeat(GrpcConnector(None, force_tls=True, connect_timeout=3), tls_combiner)
    assert tls_combiner.calls == []  # nothing reached the combiner


async def test_grpc_wrong_ca_is_refused(tls_combiner: SandboxCombiner, pki: Pki) -> None:
    with pytest.raises(ConfigError, match="TLS handshake"):
        await _heartbeat(
            GrpcConnector(None, root_cert_path=pki.other_ca_file, connect_timeout=3), tls_combiner
        )
    assert tls_combiner.calls == []  # nothing reached the combiner


async def test_grpc_custom_ca_is_accepted(tls_combiner: SandboxCombiner, pki: Pki) -> None:
    await _heartbeat(GrpcConnector(None, root_cert_path=pki.ca_file, connect_timeout=5), tls_combiner)
    assert _accepted(tls_combiner) == OVER_TLS


async def test_grpc_tls_can_be_forced_off(tls_combiner: SandboxCombiner, pki: Pki) -> None:
    connector = GrpcConnector(None, root_cert_path=pki.ca_file, force_tls=False, connect_timeout=2)
    with pytest.raises((TransientError, ConfigError)):
        await _heartbeat(connector, tls_combiner)  # plaintext to a TLS port gets nowhere
    assert tls_combiner.calls == []  # nothing reached the combiner


async def test_grpc_mtls_with_a_client_certificate_is_accepted(
    mtls_combiner: SandboxCombiner, pki: Pki
) -> None:
    connector = GrpcConnector(
        None,
        root_cert_path=pki.ca_file,
        client_cert_path=pki.client_cert,
        client_key_path=pki.client_key,
        connect_timeout=5,
    )
    await _heartbeat(connector, mtls_combiner)
    assert _accepted(mtls_combiner) == OVER_MTLS  # the combiner knows the client by its certificate


async def test_grpc_mtls_without_a_client_certificate_is_refused(
    mtls_combiner: SandboxCombiner, pki: Pki
) -> None:
    with pytest.raises((TransientError, ConfigError)):
        await _heartbeat(GrpcConnector(None, root_cert_path=pki.ca_file, connect_timeout=2), mtls_combiner)
    assert mtls_combiner.calls == []  # nothing reached the combiner


async def test_grpc_insecure_trusts_the_presented_certificate(tls_combiner: SandboxCombiner) -> None:
    # No CA given and none that could verify this one: only skipping verification gets through.
    await _heartbeat(GrpcConnector(None, force_tls=True, insecure=True, connect_timeout=5), tls_combiner)
    assert _accepted(tls_combiner) == OVER_TLS


# ------------------------------------------------------------------- https --

REQUEST = AssignmentRequest(ME, PackageMode.REMOTE)


def _https_controller(pki: Pki, mtls: bool = False) -> SandboxController:
    package = pki.ca_file.with_name("package.tgz")
    package.write_bytes(b"any bytes: only the assignment is looked at")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.server.configure_cert(context)
    if mtls:
        context.verify_mode = ssl.CERT_REQUIRED
        pki.ca.configure_trust(context)
    controller = SandboxController("127.0.0.1", 12080, package=package)
    controller.start("127.0.0.1", 0, tls=context)
    return controller


async def _assign(controller: SandboxController, **kw: object) -> Assignment:
    endpoint = ControllerEndpoint.build(f"https://127.0.0.1:{controller.port}")
    async with HttpxDiscovery(endpoint, **kw) as discovery:  # type: ignore[arg-type]
        return await discovery.assign(REQUEST)


@pytest.mark.parametrize(
    ("kw", "mtls", "status"),
    [
        ({}, False, AssignmentStatus.UNMATCHED_CONFIG),  # verification on: unknown CA refused
        ({"verify": "other"}, False, AssignmentStatus.UNMATCHED_CONFIG),  # wrong CA
        ({"verify": "ca"}, False, AssignmentStatus.ASSIGNED),  # custom CA
        ({"verify": False}, False, AssignmentStatus.ASSIGNED),  # --insecure
        ({"verify": "ca", "client_cert": "client"}, True, AssignmentStatus.ASSIGNED),  # mTLS
        ({"verify": "ca"}, True, "refused"),  # mTLS without a client certificate
    ],
)
async def test_https_controller(pki: Pki, kw: dict[str, object], mtls: bool, status: object) -> None:
    files = {"ca": str(pki.ca_file), "other": str(pki.other_ca_file)}
    args = {k: files.get(v, v) if isinstance(v, str) else v for k, v in kw.items()}
    if args.get("client_cert") == "client":
        args["client_cert"] = (str(pki.client_cert), str(pki.client_key))
    controller = _https_controller(pki, mtls)
    try:
        got = await _assign(controller, **args)
    finally:
        controller.stop()
    if status == "refused":
        # Depending on timing the server's TLS 1.3 alert arrives (a configuration error that
        # names the client certificate) or the connection is just reset (unreachable).
        assert got.status in (AssignmentStatus.UNREACHABLE, AssignmentStatus.UNMATCHED_CONFIG), got
        assert got.status is AssignmentStatus.UNREACHABLE or "client certificate" in got.message, got
    else:
        assert got.status is status, got


def test_a_token_over_plaintext_to_a_remote_host_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plaintext._warned.clear()
    with caplog.at_level(logging.WARNING, logger="fedclient.security"):
        HttpxDiscovery(ControllerEndpoint.build("http://127.0.0.1:8092"), "tok-abcdef")
        assert caplog.records == []  # loopback: fine
        HttpxDiscovery(ControllerEndpoint.build("http://fedn.example.org"), "tok-abcdef")
        HttpxDiscovery(ControllerEndpoint.build("http://other.example.org"), "tok-abcdef")
        HttpxDiscovery(ControllerEndpoint.build("https://fedn.example.org"), "tok-abcdef")
    [record] = caplog.records
    assert "unencrypted to the controller at http://fedn.example.org" in record.getMessage()
    assert "tok-abcdef" not in record.getMessage()
