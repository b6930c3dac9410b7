"""Channel decisions (TLS, metadata, options) and gRPC status -> domain error mapping."""

from __future__ import annotations

from pathlib import Path

import grpc
import grpc.aio
import pytest
from fedclient.adapters.combiner_grpc.channel import (
    CHANNEL_OPTIONS,
    ChannelSettings,
    build_channel,
    call_metadata,
    uses_tls,
)
from fedclient.adapters.combiner_grpc.failure_table import grpc_verdict
from fedclient.adapters.combiner_grpc.link import GrpcConnector
from fedclient.adapters.combiner_grpc.rpc_errors import translate
from fedclient.adapters.controller_http.conversions import combiner_address
from fedclient.domain.errors import AuthError, ConfigError, PermanentError, TransientError
from fedclient.domain.failures import Failure
from fedclient.domain.model import CombinerAddress, Identity

ME = Identity("alice", "cid-1")


@pytest.mark.parametrize(
    ("address", "settings", "tls"),
    [
        (CombinerAddress("h", 12080), ChannelSettings(), False),
        (CombinerAddress("h", 443), ChannelSettings(), True),
        (combiner_address("h", 12080, fqdn="c.example.org"), ChannelSettings(), True),  # fqdn:443
        (CombinerAddress("h", 12080), ChannelSettings(force_tls=True), True),
        (CombinerAddress("h", 12080), ChannelSettings(root_cert_path=Path("ca.pem")), True),
        (CombinerAddress("h", 12080), ChannelSettings(token="t"), False),
    ],
)
def test_tls_choice(address: CombinerAddress, settings: ChannelSettings, tls: bool) -> None:
    assert uses_tls(address, settings) is tls


def test_metadata_always_names_the_client_id_and_carries_the_token_when_set() -> None:
    plain = CombinerAddress("combiner", 12080)
    assert call_metadata(plain, ME, ChannelSettings()) == (("client", "cid-1"), ("grpc-server", "combiner"))
    with_token = call_metadata(plain, ME, ChannelSettings(token="t0k", auth_scheme="Token"))
    assert ("authorization", "Token t0k") in with_token
    assert ("grpc-server", "c.example.org") in call_metadata(
        CombinerAddress("h", 1, "c.example.org"), ME, ChannelSettings()
    )


def test_keepalive_is_not_aggressive() -> None:
    options = dict(CHANNEL_OPTIONS)
    assert options["grpc.keepalive_time_ms"] >= 60_000
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.max_receive_message_length"] >= 2 << 20


def test_download_buffering_is_bounded_by_a_fixed_window() -> None:
    options = dict(CHANNEL_OPTIONS)
    assert options["grpc.http2.bdp_probe"] == 0  # probing grows the window without bound on loopback
    assert 1 << 20 <= options["grpc.http2.lookahead_bytes"] <= 8 << 20


def test_token_never_in_repr() -> None:
    assert "s3cret" not in repr(ChannelSettings(token="s3cret"))
    assert "s3cret" not in repr(GrpcConnector("s3cret"))


def test_unreadable_root_certificate_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.pem"):
        build_channel(CombinerAddress("h", 1), ChannelSettings(root_cert_path=tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(ConfigError, match="not a PEM"):
        build_channel(CombinerAddress("h", 1), ChannelSettings(root_cert_path=junk))


def error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, details=details)


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_every_code_maps_as_the_domain_table_says(code: grpc.StatusCode) -> None:
    """The adapter adds no rules of its own: its error class is the table's verdict, for every code."""
    mapped = translate(error(code, "boom"), "heartbeat", "h:1", "a-long-token-123")
    verdict = grpc_verdict(code.name, "boom")
    expected = {
        Failure.TRANSIENT: TransientError,
        Failure.AUTH: AuthError,
        Failure.PERMANENT: AuthError if verdict.credentials else PermanentError,
    }[verdict.kind]
    assert type(mapped) is expected
    assert "h:1" in str(mapped)
    if verdict.kind is not Failure.AUTH:
        assert code.name in str(mapped) and "heartbeat" in str(mapped)


def test_unimplemented_names_the_likely_cause() -> None:
    mapped = translate(error(grpc.StatusCode.UNIMPLEMENTED, "Method not found!"), "task stream", "h:1")
    assert isinstance(mapped, PermanentError)
    assert "is this a FEDn 0.33 combiner? wrong host or port?" in str(mapped)


def test_refused_token_is_one_line_and_never_shows_the_token() -> None:
    mapped = translate(
        error(grpc.StatusCode.UNAUTHENTICATED, "Invalid token\nfor sekrit-jwt"),
        "heartbeat",
        "h:1",
        "sekrit-jwt",
    )
    assert isinstance(mapped, AuthError)
    assert str(mapped).startswith("the combiner refused the token: Invalid token")
    assert "\n" not in str(mapped) and "sekrit-jwt" not in str(mapped)


def test_permission_denied_and_missing_token_are_auth_errors() -> None:
    denied = translate(error(grpc.StatusCode.PERMISSION_DENIED, "Insufficient permissions"), "x", "h:1", "t")
    assert isinstance(denied, AuthError) and "Insufficient permissions" in str(denied)
    missing = translate(error(grpc.StatusCode.UNAUTHENTICATED, "Token is missing"), "x", "h:1", None)
    assert isinstance(missing, AuthError) and "none is set" in str(missing)
