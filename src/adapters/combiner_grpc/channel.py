"""The gRPC channel to a combiner and the metadata every call carries, decided in one place.

Differences from FEDn 0.33 on purpose (PROTOCOL.md 3.3, 7.6, 7.16):
* TLS is chosen by port 443 (as FEDn), by an explicit setting, or by a custom
  root certificate - not by the port number alone.
* The token travels as plain per-call ``authorization`` metadata on plaintext
  and TLS channels alike. FEDn drops it on plaintext channels and when a custom
  root CA is set; grpc.aio also refuses call credentials on insecure channels.
* Keepalive pings every 60 s (the combiner's own keepalive time) instead of
  every 5 s, and only while a call is open - the TaskStream always is.
  Measured against FEDn's server options (max_ping_strikes=2, default 5 min
  minimum ping interval without data): a TaskStream with NO other traffic is
  closed with GOAWAY "too_many_pings" after ~180 s (UNAVAILABLE, so the
  lifecycle reconnects); with the 2 s heartbeat running it stayed up (330 s
  test), because the combiner's heartbeat replies reset its ping strikes.
  A 300 s keepalive survived 960 s of no traffic at all, at the cost of
  slower dead-peer detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio

from ...domain.errors import ConfigError
from ...domain.model import CombinerAddress, Identity

MAX_MESSAGE_BYTES = 16 << 20  # chunks are 1 MiB; headroom for a peer using bigger ones
# A fixed HTTP/2 receive window instead of gRPC's bandwidth-delay probing. With probing,
# a download whose consumer (Python, writing to disk) is slower than loopback grows the
# window without bound: the client's peak RSS went 65-220 MiB for one 256 MiB model. A
# fixed 4 MiB window kept it at 59-70 MiB at the same loopback speed (8 MiB: 68-95); over
# a WAN it caps a download at window / round trip, 80 MiB/s at 50 ms (computed, not
# measured; see docs/PERFORMANCE.md).
RECEIVE_WINDOW_BYTES = 4 << 20

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", RECEIVE_WINDOW_BYTES),
)

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ChannelSettings:
    """How to reach and authenticate to a combiner; the token is never part of repr()."""

    token: str | None = None
    auth_scheme: str = "Bearer"
    root_cert_path: Path | None = None
    force_tls: bool = False

    def __repr__(self) -> str:
        token = "set" if self.token else "unset"
        return (
            f"ChannelSettings(token={token}, auth_scheme={self.auth_scheme!r}, "
            f"root_cert_path={self.root_cert_path!r}, force_tls={self.force_tls})"
        )


def uses_tls(address: CombinerAddress, settings: ChannelSettings) -> bool:
    return address.dial_port == 443 or settings.force_tls or settings.root_cert_path is not None


def dial_host(address: CombinerAddress) -> str:
    """The host name actually dialled (the fqdn when there is one)."""
    return address.fqdn or address.host


def call_metadata(address: CombinerAddress, identity: Identity, settings: ChannelSettings) -> Metadata:
    """Metadata for every RPC. The combiner indexes ``client`` on TaskStream: always the client_id."""
    metadata: list[tuple[str, str]] = [("client", identity.client_id), ("grpc-server", dial_host(address))]
    if settings.token:
        metadata.append(("authorization", f"{settings.auth_scheme} {settings.token}"))
    return tuple(metadata)


def _root_certificates(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the gRPC root certificate {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ConfigError(f"the gRPC root certificate {path} is not a PEM certificate")
    return pem


def build_channel(address: CombinerAddress, settings: ChannelSettings) -> grpc.aio.Channel:
    """Open (lazily) a channel to the combiner; nothing is dialled until the first call or ready-wait."""
    if uses_tls(address, settings):
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_root_certificates(settings.root_cert_path)
        )
        return grpc.aio.secure_channel(address.target, credentials, options=CHANNEL_OPTIONS)
    return grpc.aio.insecure_channel(address.target, options=CHANNEL_OPTIONS)
