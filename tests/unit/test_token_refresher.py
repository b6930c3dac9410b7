"""The HTTP side of FEDn's token refresh, and a shared token reaching the REST and gRPC adapters."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc.aio
import httpx
import pytest
from fedclient.adapters.combiner_grpc.channel import ChannelSettings
from fedclient.adapters.combiner_grpc.link import GrpcCombinerLink
from fedclient.adapters.controller_http import ControllerEndpoint, HttpxDiscovery
from fedclient.adapters.controller_http.refresh import HttpTokenRefresher
from fedclient.domain.credentials import Credentials
from fedclient.domain.errors import AuthError, ConfigError, TransientError
from fedclient.domain.model import CombinerAddress, Identity
from fedclient.testing.fakes import FakeClock, InMemoryTokenRefresher, SeededRandom

URI = "https://auth.example.org/api/token/refresh/"
REFRESH = "the-refresh-token-0123456789"
Handler = Callable[[httpx.Request], httpx.Response]


async def refresh(handler: Handler) -> tuple[str, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        token = await HttpTokenRefresher(URI, REFRESH, client=client).refresh()
    return token, seen


async def test_posts_the_refresh_token_and_takes_access() -> None:
    token, [request] = await refresh(lambda r: httpx.Response(200, json={"access": "new-access", "x": 1}))
    assert token == "new-access"
    assert (request.method, str(request.url)) == ("POST", URI)
    assert json.loads(request.content) == {"refresh": REFRESH}
    assert "authorization" not in request.headers, "FEDn sends no Authorization with a refresh"


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (httpx.Response(401, json={"detail": f"bad {REFRESH}"}), AuthError, "refresh token was refused"),
        (httpx.Response(403, text="no"), AuthError, "refresh token was refused"),
        (httpx.Response(200, json={"refresh": "x"}), ConfigError, "no 'access' token"),
        (httpx.Response(200, text="<html>"), ConfigError, "no 'access' token"),
        (httpx.Response(503, text="later", headers={"retry-after": "9"}), TransientError, "HTTP 503"),
        (httpx.Response(404, text="nope"), ConfigError, "HTTP 404"),
        (httpx.Response(302, headers={"location": "https://evil/"}), ConfigError, "HTTP 302"),
    ],
)
async def test_refusals_and_odd_replies(reply: httpx.Response, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text) as err:
        await refresh(lambda r: reply)
    assert REFRESH not in str(err.value)
    if isinstance(err.value, AuthError):
        assert not err.value.refreshable
    if isinstance(err.value, TransientError):
        assert err.value.retry_after == 9.0


async def test_unreachable_refresh_uri_is_transient() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(TransientError, match="cannot reach the token refresh URI"):
        await refresh(down)


@pytest.mark.parametrize(("uri", "token"), [("ftp://x/", REFRESH), ("auth/refresh", REFRESH), (URI, "")])
def test_bad_refresh_settings_are_config_errors(uri: str, token: str) -> None:
    with pytest.raises(ConfigError):
        HttpTokenRefresher(uri, token)


async def test_a_refreshed_token_reaches_rest_and_grpc_without_rebuilding_them() -> None:
    creds = Credentials("old-token-123456", InMemoryTokenRefresher(), FakeClock(), random=SeededRandom())
    discovery = HttpxDiscovery(ControllerEndpoint.build("http://ctl"), creds)
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # lazy: never dialled, only metadata is read
    link = GrpcCombinerLink(
        channel=channel,
        address=CombinerAddress("h", 1),
        identity=Identity("a", "cid"),
        settings=ChannelSettings(),
        credentials=creds,
    )
    assert discovery.headers()["Authorization"] == "Bearer old-token-123456"
    assert ("authorization", "Bearer old-token-123456") in link._metadata()
    assert await creds.renew(creds.version, AuthError("Token expired"))
    assert discovery.headers()["Authorization"] == "Bearer token-1"
    assert ("authorization", "Bearer token-1") in link._metadata()
    assert "old-token-123456" not in discovery.redact("echo old-token-123456 and token-1")
    await link.close()
