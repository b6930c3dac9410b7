"""Every controller answer of docs/PROTOCOL.md §1.3-§1.5 maps to a domain outcome, never a traceback."""

from __future__ import annotations

import gzip
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fedclient.adapters.controller_http import ControllerEndpoint, HttpxDiscovery, HttpxPackageSource
from fedclient.adapters.controller_http.packages import filename_from_disposition, local_name
from fedclient.domain.errors import AuthError, ConfigError, PackageError, TransientError
from fedclient.domain.model import AssignmentRequest, AssignmentStatus, Identity, PackageMode

TOKEN = "s3cr3t-token-value"
ENDPOINT = ControllerEndpoint.build("http://ctl", api_port=8092)
REQUEST = AssignmentRequest(Identity("alice", "cid-1"), PackageMode.REMOTE, preferred_combiner="c1")
ASSIGNED = {
    "status": "assigned",
    "host": "combiner",
    "fqdn": None,
    "package": "remote",
    "ip": "10.0.0.2",
    "port": 12080,
    "helper_type": "numpyhelper",
    "client_id": "cid-from-server",
}
Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _reply(status: int, body: Any = None, text: str | None = None, **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


async def _assign(handler: Handler, token: str | None = TOKEN) -> Any:
    async with _client(handler) as client:
        return await HttpxDiscovery(ENDPOINT, token, client=client).assign(REQUEST)


async def test_assigned_reply_and_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ASSIGNED)

    result = await _assign(handler)
    assert result.status is AssignmentStatus.ASSIGNED
    assert (result.combiner.host, result.combiner.port, result.combiner.fqdn) == ("combiner", 12080, None)
    assert result.client_id == "cid-from-server"
    assert result.helper_type == "numpyhelper"
    (req,) = seen
    assert req.method == "POST"
    assert str(req.url) == "http://ctl:8092/api/v1/clients/add"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(req.content) == {
        "name": "alice",
        "client_id": "cid-1",
        "preferred_combiner": "c1",
        "combiner_preferred": "c1",
        "package": "remote",
    }


async def test_no_token_means_no_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ASSIGNED)

    await _assign(handler, token=None)
    assert "authorization" not in seen[0].headers


async def test_custom_auth_scheme() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ASSIGNED)

    async with _client(handler) as client:
        await HttpxDiscovery(ENDPOINT, TOKEN, auth_scheme="Token", client=client).assign(REQUEST)
    assert seen[0].headers["authorization"] == f"Token {TOKEN}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({**ASSIGNED, "fqdn": "c.example.org"}, ("combiner", 12080, "c.example.org")),
        (
            {**ASSIGNED, "host": None, "port": None, "fqdn": "c.example.org"},
            ("c.example.org", 443, "c.example.org"),
        ),
        ({**ASSIGNED, "port": "12081"}, ("combiner", 12081, None)),
        ({**ASSIGNED, "fqdn": ""}, ("combiner", 12080, None)),
    ],
)
async def test_assigned_address_variants(body: dict[str, Any], expected: tuple[Any, ...]) -> None:
    result = await _assign(_reply(200, body))
    assert result.status is AssignmentStatus.ASSIGNED
    assert (result.combiner.host, result.combiner.port, result.combiner.fqdn) == expected


async def test_assigned_without_client_id_or_helper_keeps_ours() -> None:
    body = {k: v for k, v in ASSIGNED.items() if k not in ("client_id", "helper_type")}
    result = await _assign(_reply(200, body))
    assert (result.client_id, result.helper_type) == ("cid-1", "")


@pytest.mark.parametrize("bad", [{"port": None}, {"port": "x"}, {"port": 0}, {"port": True}, {"host": ""}])
async def test_assigned_without_usable_address_is_unmatched(bad: dict[str, Any]) -> None:
    result = await _assign(_reply(200, {**ASSIGNED, **bad}))
    assert result.status is AssignmentStatus.UNMATCHED_CONFIG
    assert "usable address" in result.message


@pytest.mark.parametrize(
    ("handler", "status", "needle"),
    [
        # FEDn's preferred-combiner-not-found bug: HTTP 200 with a JSON list body.
        (
            _reply(200, [{"success": False, "message": "Preferred combiner c1 not found."}, 400]),
            AssignmentStatus.UNMATCHED_CONFIG,
            "Preferred combiner c1 not found.",
        ),
        (_reply(200, {"status": "weird"}), AssignmentStatus.UNMATCHED_CONFIG, "dict reply"),
        (_reply(200, "assigned"), AssignmentStatus.UNMATCHED_CONFIG, "str reply"),
        (_reply(200, text="<html>hi</html>"), AssignmentStatus.UNREACHABLE, "an HTML page, not JSON"),
        (_reply(200, {"status": "retry", "message": "later"}), AssignmentStatus.TRY_AGAIN, "later"),
        (
            _reply(203, {"success": False, "status": "retry", "message": "No compute package found."}),
            AssignmentStatus.TRY_AGAIN,
            "No compute package found.",
        ),
        (_reply(203, text=""), AssignmentStatus.TRY_AGAIN, "try again"),
        (  # FEDn's answer while its combiners restart: worth waiting for
            _reply(400, {"message": "No combiner available."}),
            AssignmentStatus.TRY_AGAIN,
            "No combiner",
        ),
        (_reply(400, text="bad"), AssignmentStatus.UNMATCHED_CONFIG, "bad"),
        (_reply(401, {"message": "Token expired"}), AssignmentStatus.UNAUTHORIZED, "Token expired"),
        (_reply(401, {"message": "Invalid token"}), AssignmentStatus.UNAUTHORIZED, "Invalid token"),
        (_reply(403, text="<h1>Forbidden</h1>"), AssignmentStatus.UNAUTHORIZED, "Forbidden"),
        (
            _reply(404, text="<html>Not Found</html>"),
            AssignmentStatus.UNMATCHED_CONFIG,
            "no FEDn controller API",
        ),
        (_reply(405, {"message": "nope"}), AssignmentStatus.UNMATCHED_CONFIG, "HTTP 405"),
        (_reply(410, {"message": "deprecated"}), AssignmentStatus.UNMATCHED_CONFIG, "older/newer API"),
        (_reply(429, text="slow down"), AssignmentStatus.UNREACHABLE, "HTTP 429"),
        (_reply(500, {"success": False, "message": "boom"}), AssignmentStatus.UNREACHABLE, "boom"),
        (_reply(502, text="<html>Bad Gateway</html>"), AssignmentStatus.UNREACHABLE, "Bad Gateway"),
        (_reply(503, text=""), AssignmentStatus.UNREACHABLE, "HTTP 503"),
        (
            _reply(307, text="", location="https://ctl/api/v1/clients/add"),
            AssignmentStatus.UNMATCHED_CONFIG,
            "redirects to https://ctl/",
        ),
    ],
)
async def test_status_mapping(handler: Handler, status: AssignmentStatus, needle: str) -> None:
    result = await _assign(handler)
    assert result.status is status
    assert needle in result.message
    assert TOKEN not in result.message


async def test_404_message_names_the_url_and_flags() -> None:
    result = await _assign(_reply(404, text="nope"))
    assert result.message == (
        "no FEDn controller API at http://ctl:8092/api/v1/clients/add (HTTP 404) — check --api-url/--api-port"
    )


async def test_missing_token_hint_and_echoed_token_is_redacted() -> None:
    result = await _assign(_reply(401, {"message": "Missing token"}), token=None)
    assert "no token was given" in result.message
    echoed = await _assign(_reply(401, {"message": f"Invalid token {TOKEN}"}))
    assert TOKEN not in echoed.message and "***" in echoed.message


async def test_huge_error_body_is_truncated() -> None:
    result = await _assign(_reply(500, text="x" * 5_000_000))
    assert result.status is AssignmentStatus.UNREACHABLE
    assert len(result.message) < 500


def _raiser(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), AssignmentStatus.UNREACHABLE),
        (httpx.ReadTimeout("timed out"), AssignmentStatus.UNREACHABLE),
        (httpx.RemoteProtocolError("peer closed"), AssignmentStatus.UNREACHABLE),
        (httpx.UnsupportedProtocol("no"), AssignmentStatus.UNMATCHED_CONFIG),
    ],
)
async def test_transport_failures(exc: Exception, status: AssignmentStatus) -> None:
    result = await _assign(_raiser(exc))
    assert result.status is status
    assert "http://ctl:8092/api/v1/clients/add" in result.message


async def test_certificate_failure_is_final() -> None:
    exc = httpx.ConnectError("ssl")
    exc.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    result = await _assign(_raiser(exc))
    assert result.status is AssignmentStatus.UNMATCHED_CONFIG
    assert "TLS certificate verification failed" in result.message


def test_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CA bundle"):
        HttpxDiscovery(ENDPOINT, None, verify=str(tmp_path / "missing.pem"))


# ------------------------------------------------------------------ packages --


async def _download(handler: Handler, dest: Path) -> Path:
    async with _client(handler) as client:
        return await HttpxPackageSource(ENDPOINT, TOKEN, client=client).download(dest)


async def _checksum(handler: Handler) -> str | None:
    async with _client(handler) as client:
        return await HttpxPackageSource(ENDPOINT, TOKEN, client=client).checksum()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, PackageError),
        (401, AuthError),
        (403, AuthError),
        (500, TransientError),
        (503, TransientError),
        (410, ConfigError),
        (400, ConfigError),
    ],
)
async def test_download_errors(status: int, error: type[Exception], tmp_path: Path) -> None:
    with pytest.raises(error) as err:
        await _download(_reply(status, {"message": f"m {TOKEN}"}), tmp_path)
    assert TOKEN not in str(err.value)
    assert list(tmp_path.iterdir()) == []


async def test_download_404_message() -> None:
    with pytest.raises(PackageError, match="the controller has no active compute package"):
        await _download(_reply(404, {"message": "No active package"}), Path("/nonexistent-never-written"))


async def test_download_connection_error_is_transient(tmp_path: Path) -> None:
    with pytest.raises(TransientError, match="cannot reach the controller"):
        await _download(_raiser(httpx.ConnectError("refused")), tmp_path)


async def test_download_without_disposition_uses_fallback_name(tmp_path: Path) -> None:
    path = await _download(lambda r: httpx.Response(200, content=b"abc"), tmp_path)
    assert path == tmp_path / "package.tgz"
    assert path.read_bytes() == b"abc"


async def test_truncated_download_leaves_nothing(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=b"abc",
            headers={"content-length": "10", "content-disposition": "attachment; filename=p.tgz"},
        )

    with pytest.raises(TransientError, match="cut short"):
        await _download(handler, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("attachment; filename=abc.tgz", "abc.tgz"),
        ('attachment; filename="a b.tgz"', "a b.tgz"),
        ("attachment; filename*=UTF-8''na%C3%AFve.tgz", "naïve.tgz"),
        ("attachment; filename=../../etc/passwd", "passwd"),
        ('attachment; filename="..\\\\..\\\\evil.tgz"', "evil.tgz"),
        ('attachment; filename=".."', "package.tgz"),
        ("attachment", "package.tgz"),
        (None, "package.tgz"),
        ("attachment; filename*=bogus''%ZZ", "%ZZ"),
        ("attachment; filename=" + "a" * 400 + ".tgz", "a" * 196 + ".tgz"),
    ],
)
def test_local_name(header: str | None, expected: str) -> None:
    assert local_name(header) == expected


def test_filename_from_disposition_never_raises() -> None:
    for header in ["", ";;;", "attachment; filename*=", "attachment; filename*=x'y'", 'x; filename="']:
        filename_from_disposition(header)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (_reply(200, {"message": "Checksum created.", "checksum": "AB" * 32}), "ab" * 32),
        (_reply(404, {"message": "No compute package uploaded", "checksum": None}), None),
        (_reply(404, text="<html>"), None),
        (_reply(200, {"checksum": None}), None),
        (_reply(200, {"checksum": ""}), None),
    ],
)
async def test_checksum(handler: Handler, expected: str | None) -> None:
    assert await _checksum(handler) == expected


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (_reply(200, text="not json"), TransientError),
        (_reply(200, {"checksum": "xyz"}), PackageError),
        (_reply(200, {"checksum": 12}), PackageError),
        (_reply(401, {"message": "Invalid token"}), AuthError),
        (_reply(500, text="boom"), TransientError),
        (_raiser(httpx.ReadTimeout("slow")), TransientError),
    ],
)
async def test_checksum_errors(handler: Handler, error: type[Exception]) -> None:
    with pytest.raises(error):
        await _checksum(handler)


async def test_gzip_encoded_download_is_decoded_and_length_checked_on_the_wire(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000
    wire = gzip.compress(payload)

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {
            "content-encoding": "gzip",
            "content-length": str(len(wire)),
            "content-disposition": "attachment; filename=p.tgz",
        }
        return httpx.Response(200, stream=httpx.ByteStream(wire), headers=headers)

    path = await _download(handler, tmp_path)
    assert path.read_bytes() == payload


def test_chunk_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="chunk_bytes"):
        HttpxPackageSource(ENDPOINT, None, chunk_bytes=1024)
