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

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio

from ...domain.errors import ConfigError, TransientError
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
    force_tls: bool | None = None  # True/False force TLS on/off; None: FEDn's rule (see uses_tls)
    client_cert_path: Path | None = None  # mTLS: our certificate chain (PEM) ...
    client_key_path: Path | None = None  # ... and its private key (PEM)
    insecure: bool = False  # TLS without verifying the combiner (trust what it presents)

    def __repr__(self) -> str:
        token = "set" if self.token else "unset"
        return (
            f"ChannelSettings(token={token}, auth_scheme={self.auth_scheme!r}, "
            f"root_cert_path={self.root_cert_path!r}, force_tls={self.force_tls}, "
            f"client_cert_path={self.client_cert_path!r}, insecure={self.insecure})"
        )


def uses_tls(address: CombinerAddress, settings: ChannelSettings) -> bool:
    """FEDn's rule (port 443, or a root certificate given) unless TLS is forced on or off."""
    if settings.force_tls is not None:
        return settings.force_tls
    return address.dial_port == 443 or settings.root_cert_path is not None


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


def _pem(path: Path | None, what: str, marker: bytes) -> bytes | None:
    if path is None:
        return None
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    if marker not in pem:
        raise ConfigError(f"the {what} {path} is not PEM")
    return pem


def presented_certificate(address: CombinerAddress, timeout: float = 10.0) -> tuple[bytes, str]:
    """The certificate the combiner presents (unverified: only for ``insecure``) and a name in it.

    gRPC cannot turn verification off, so ``insecure`` trusts exactly what the server
    shows this once, and accepts the name it shows, instead.
    """
    host = dial_host(address)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the explicit --insecure opt-out
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, address.dial_port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise TransientError(f"cannot fetch the TLS certificate of {address.target}: {exc}") from None
    if not der:
        raise ConfigError(f"combiner {address.target} presented no TLS certificate")
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    return pem, _certificate_name(pem) or host


def _certificate_name(pem: bytes) -> str | None:
    """A DNS name (or the CN) from a certificate, read with the ssl module's own decoder."""
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as f:
        f.write(pem)
        f.flush()
        try:
            info = ssl._ssl._test_decode_cert(f.name)  # type: ignore[attr-defined]
        except (AttributeError, ssl.SSLError, OSError):
            return None
    for kind, value in info.get("subjectAltName", ()):
        if kind == "DNS":
            return str(value)
    for rdn in info.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def build_channel(
    address: CombinerAddress, settings: ChannelSettings, presented: tuple[bytes, str] | None = None
) -> grpc.aio.Channel:
    """Open (lazily) a channel to the combiner; nothing is dialled until the first call or ready-wait.

    Verification is always on with TLS (the system roots, or ``root_cert_path``), except with
    the explicit ``insecure`` opt-out, which trusts ``presented`` (from ``presented_certificate``).
    A client certificate and key give mutual TLS.
    """
    if not uses_tls(address, settings):
        return grpc.aio.insecure_channel(address.target, options=CHANNEL_OPTIONS)
    if (settings.client_cert_path is None) != (settings.client_key_path is None):
        raise ConfigError("mutual TLS needs both a client certificate and its key")
    key = _pem(settings.client_key_path, "client key", b"PRIVATE KEY-----")
    chain = _pem(settings.client_cert_path, "client certificate", b"-----BEGIN CERTIFICATE-----")
    options = CHANNEL_OPTIONS
    root = _root_certificates(settings.root_cert_path)
    if settings.insecure:
        root, name = presented if presented is not None else presented_certificate(address)
        options = (*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", name))  # type: ignore[assignment]
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain
    )
    return grpc.aio.secure_channel(address.target, credentials, options=options)
