"""A throw-away certificate authority and a combiner server certificate, made with the openssl CLI.

The combiner of a TLS ``FednNetwork`` serves gRPC on 127.0.0.1:443 with ``server.pem``;
clients trust ``ca.pem`` (fedclient: ``FEDN_GRPC_ROOT_CERT_PATH``; the stock client:
gRPC's ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``; the controller: ``FEDN_GRPC_CERT_PATH``).
The controller hands clients ``host: 127.0.0.1, fqdn: null`` (the combiner config), so
the certificate names IP:127.0.0.1, and DNS:localhost for anyone dialling by name.
EC P-256 keys: made in milliseconds, and every gRPC TLS stack accepts them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_NAMES = "DNS:localhost,IP:127.0.0.1"
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path  # the trust root clients are given
    server_cert: Path  # combiner certificate, signed by the CA
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def make_ca_and_server_cert(directory: Path, *, ca_name: str = "fedclient interop CA") -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", f"/CN={ca_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", *_EC, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        f"subjectAltName={SERVER_NAMES}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    for key in ("ca.key", "server.key"):
        (directory / key).chmod(0o600)
    return TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
