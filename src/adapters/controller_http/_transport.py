"""What the discovery and package adapters share: the client, auth, bounded reads, safe messages.

Every message built here may reach the user's terminal, so anything that came from
the server or from an exception is passed through ``redact`` before it is used.
"""

from __future__ import annotations

import json
import os
import ssl
from typing import Any, TypeVar

import httpx

from ...domain.credentials import Credentials
from ...domain.errors import ConfigError
from ...domain.failures import Failure, transport_verdict
from .endpoint import ControllerEndpoint

# Controller answers (other than the package body) are a few hundred bytes; a reply
# bigger than this is not one of them and is not worth holding in memory.
MAX_REPLY_BYTES = 1024 * 1024
_SNIPPET = 200

Verify = bool | str
_Self = TypeVar("_Self", bound="ControllerHttp")


def tls_setting(verify: Verify) -> bool | ssl.SSLContext:
    """Turn ``verify`` (on, off or a CA bundle path) into what httpx expects.

    httpx 0.28 deprecates a bare path, so a CA file or directory becomes a context here.
    """
    if isinstance(verify, bool):
        return verify
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    if os.path.isfile(verify):
        return ssl.create_default_context(cafile=verify)
    raise ConfigError(f"CA bundle {verify!r} does not exist")


def classify_http_error(exc: httpx.HTTPError) -> tuple[bool, str]:
    """(retryable, reason) for a transport failure.

    A certificate that does not verify will not verify on the next try either, and an
    unusable URL stays unusable; everything else (refused, reset, timed out) may pass.
    """
    cause: BaseException | None = exc
    for _ in range(10):  # bounded: exception chains can be cyclic
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = getattr(cause, "verify_message", None) or cause
            return False, f"TLS certificate verification failed ({detail})"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.UnsupportedProtocol):
        return False, f"unusable URL ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return True, f"no answer in time ({type(exc).__name__})"
    reason = str(exc) or type(exc).__name__
    verdict = transport_verdict(reason)
    if verdict.kind is not Failure.TRANSIENT:
        return False, f"{reason} ({verdict.hint})"
    return True, reason


class ControllerHttp:
    """One httpx client per adapter unless one is injected (then its owner closes it)."""

    def __init__(
        self,
        endpoint: ControllerEndpoint,
        token: str | Credentials | None = None,
        auth_scheme: str = "Bearer",
        verify: Verify = True,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.endpoint = endpoint
        # One Credentials object may be shared with the gRPC links: a refresh reaches them all.
        self.credentials = token if isinstance(token, Credentials) else Credentials(token)
        self._auth_scheme = auth_scheme
        self._timeout = httpx.Timeout(timeout)
        # Checked even with an injected client, so a missing CA file is reported early;
        # an injected client otherwise keeps its own TLS settings.
        self._verify = tls_setting(verify)
        self._client = client
        self._owns_client = client is None

    @property
    def _token(self) -> str | None:
        return self.credentials.token

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def headers(self) -> dict[str, str]:
        """Request headers; Authorization only when we have a token (FEDn sends ``Bearer None``)."""
        headers = {"Accept": "application/json"}
        if self._token is not None:
            value = f"{self._auth_scheme} {self._token}" if self._auth_scheme else self._token
            headers["Authorization"] = value
        return headers

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # Redirects are not followed: a POST must not be replayed elsewhere with our
            # token, and a redirect usually means the configured URL is wrong.
            self._client = httpx.AsyncClient(
                verify=self._verify, timeout=self._timeout, follow_redirects=False
            )
        return self._client

    @property
    def timeout(self) -> httpx.Timeout:
        return self._timeout

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def redact(self, text: str) -> str:
        """Remove our tokens from text that came from elsewhere (a server may echo them back)."""
        for token in self.credentials.secrets():
            if token in text:
                text = text.replace(token, "<redacted>")
        return text


async def read_capped(response: httpx.Response, limit: int = MAX_REPLY_BYTES) -> bytes:
    """Read a streamed reply body, but never more than ``limit`` bytes of it."""
    buf = bytearray()
    async for chunk in response.aiter_bytes():
        buf.extend(chunk[: limit - len(buf)])
        if len(buf) >= limit:
            break
    return bytes(buf)


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``, or None when it is not JSON at all."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def body_message(body: bytes, data: Any = None) -> str:
    """The human part of a reply: its ``message`` when JSON, else a short text snippet.

    Handles FEDn's list-shaped error reply (``[{"message": ...}, 400]``) too.
    """
    if data is None:
        data = parse_json(body)
    candidates = data if isinstance(data, list) else [data]
    for item in candidates:
        if isinstance(item, dict):
            for key in ("message", "error", "detail"):
                value = item.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else "")
