"""What the discovery and package adapters share: the client, auth, bounded reads, safe messages.

Every message built here may reach the user's terminal, so anything that came from
the server or from an exception is passed through ``redact`` before it is used.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ...domain.credentials import Credentials
from ...domain.errors import ConfigError
from ...domain.failures import Failure, parse_retry_after
from ...domain.redaction import redact, register_secret
from ..plaintext import warn_plaintext_token
from .endpoint import ControllerEndpoint
from .failure_table import transport_verdict

# Controller answers (other than the package body) are a few hundred bytes; a reply
# bigger than this is not one of them and is not worth holding in memory.
MAX_REPLY_BYTES = 1024 * 1024
_SNIPPET = 200

Verify = bool | str
_Self = TypeVar("_Self", bound="ControllerHttp")


ClientCert = tuple[str, str]  # (certificate chain PEM file, private key PEM file)


def retry_after(value: str | None) -> float | None:
    """The wait a Retry-After header asks for, an HTTP date measured from the wall clock now."""
    return parse_retry_after(value, now=time.time())


def tls_setting(verify: Verify, client_cert: ClientCert | None = None) -> bool | ssl.SSLContext:
    """Turn ``verify`` (on, off or a CA bundle path) and a client certificate into what httpx expects.

    httpx 0.28 deprecates a bare path, so a CA file or directory becomes a context here.
    """
    if isinstance(verify, bool) and client_cert is None:
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the explicit --insecure opt-out
    elif verify is True:
        context = ssl.create_default_context()
    elif os.path.isdir(verify):
        context = ssl.create_default_context(capath=verify)
    elif os.path.isfile(verify):
        context = ssl.create_default_context(cafile=verify)
    else:
        raise ConfigError(f"CA bundle {verify!r} does not exist")
    if client_cert is not None:
        cert, key = client_cert
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the client certificate {cert} with key {key}: {exc}") from None
    return context


# httpx maps most TLS failures to ConnectError, but a TLS 1.3 alert that arrives after the
# handshake (a server refusing our client certificate) surfaces as a bare ssl.SSLError.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, ssl.SSLError)


def classify_http_error(exc: Exception) -> tuple[bool, str]:
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
        if isinstance(cause, ssl.SSLError) and "CERTIFICATE_REQUIRED" in str(cause):
            return False, "the server requires a client certificate (give --client-cert and --client-key)"
        if isinstance(cause, ssl.SSLError) and "BAD_CERTIFICATE" in str(cause).upper():
            return False, f"the server refused our client certificate ({cause})"
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
        client_cert: ClientCert | None = None,
    ) -> None:
        self.endpoint = endpoint
        # One Credentials object may be shared with the gRPC links: a refresh reaches them all.
        self.credentials = token if isinstance(token, Credentials) else Credentials(token)
        register_secret(self.credentials.token)
        parts = urlsplit(endpoint.base)
        if self.credentials.token and parts.scheme == "http":
            warn_plaintext_token(f"the controller at {endpoint.base}", parts.hostname or "")
        self._auth_scheme = auth_scheme
        self._timeout = httpx.Timeout(timeout)
        # Checked even with an injected client, so a missing CA file is reported early;
        # an injected client otherwise keeps its own TLS settings.
        self._verify = tls_setting(verify, client_cert)
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
        """Remove secrets from text that came from elsewhere (a server may echo our token back)."""
        for token in self.credentials.secrets():
            register_secret(token)
        return redact(text)


async def read_capped(response: httpx.Response, limit: int = MAX_REPLY_BYTES) -> bytes:
    """Read a streamed reply body, but never more than ``limit`` + 1 bytes of it.

    A result longer than ``limit`` means the reply was cut off (see ``oversized``).
    """
    buf = bytearray()
    async for chunk in response.aiter_bytes():
        buf.extend(chunk[: limit + 1 - len(buf)])
        if len(buf) > limit:
            break
    return bytes(buf)


def oversized(body: bytes, limit: int = MAX_REPLY_BYTES) -> bool:
    return len(body) > limit


def first_bytes(body: bytes, n: int = 60) -> str:
    """The start of a reply, printable and secret-free, for an error message."""
    return redact(repr(body[:n]) + ("…" if len(body) > n else ""))


def not_json(url: str, code: int, body: bytes) -> str:
    """Why a reply that should be a JSON document is not one, naming the URL and its first bytes."""
    if oversized(body):
        return f"the reply from {url} (HTTP {code}) is larger than {MAX_REPLY_BYTES} bytes; not a FEDn reply"
    head = body.lstrip()[:15].lower()
    if head.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml")):
        what = "an HTML page, not JSON (a proxy, login or error page in front of the controller?)"
    elif not body.strip():
        what = "an empty body, not JSON"
    else:
        what = "not JSON"
    return f"the reply from {url} (HTTP {code}) is {what}; it starts with {first_bytes(body)}"


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``, or None when it is not JSON at all (or too big or deep)."""
    if oversized(body):
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
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
