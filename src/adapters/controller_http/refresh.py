"""Token refresh as FEDn 0.33 defines it: POST ``{"refresh": <refresh token>}`` to the refresh URI.

FEDn's client (``ConnectorClient.refresh_token``) posts that JSON body to the absolute
URI in ``FEDN_AUTH_REFRESH_TOKEN_URI`` with no Authorization header and takes the new
access token from the reply's ``access`` key. The 0.33 controller serves no such
endpoint itself; it is the identity service's (e.g. FEDn Studio's). Differences, on the
safe side: redirects are not followed (the refresh token must not be replayed elsewhere),
the reply is size-capped, and a reply without a usable ``access`` token is an error
instead of a KeyError.

This is the ``TokenRefresher`` port; ``domain.credentials`` decides when to call it.
"""

from __future__ import annotations

import logging

import httpx

from ...domain.errors import AuthError, ConfigError, FedClientError, TransientError
from ...domain.failures import error_for
from ...domain.redaction import redact, register_secret
from ._transport import (
    Verify,
    body_message,
    classify_http_error,
    parse_json,
    read_capped,
    retry_after,
    tls_setting,
)
from .failure_table import http_verdict

log = logging.getLogger(__name__)


class HttpTokenRefresher:
    """``TokenRefresher`` over httpx. Close with ``aclose()`` (only closes a client it made)."""

    def __init__(
        self,
        uri: str,
        refresh_token: str,
        verify: Verify = True,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not uri.startswith(("http://", "https://")):
            raise ConfigError(f"the token refresh URI must be an http(s) URL, got {uri!r}")
        if not refresh_token:
            raise ConfigError("a token refresh URI is set but no refresh token (FEDN_AUTH_REFRESH_TOKEN)")
        register_secret(refresh_token)
        self.uri = uri
        self._refresh_token = refresh_token
        self._verify = tls_setting(verify)
        self._timeout = httpx.Timeout(timeout)
        self._client = client
        self._owns_client = client is None
        self.calls = 0

    def __repr__(self) -> str:
        return f"HttpTokenRefresher({self.uri!r}, refresh_token=set)"

    def _redact(self, text: str) -> str:
        return redact(text)  # the one redactor; the refresh token is registered with it

    async def refresh(self) -> str:
        self.calls += 1
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=self._verify, timeout=self._timeout, follow_redirects=False
            )
        try:
            async with self._client.stream(
                "POST",
                self.uri,
                json={"refresh": self._refresh_token},
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            ) as response:
                body = await read_capped(response)
        except httpx.HTTPError as exc:
            retryable, reason = classify_http_error(exc)
            message = self._redact(f"cannot reach the token refresh URI {self.uri}: {reason}")
            raise (TransientError(message) if retryable else ConfigError(message)) from None
        return self._interpret(response, body)

    def _interpret(self, response: httpx.Response, body: bytes) -> str:
        code = response.status_code
        data = parse_json(body)
        if 200 <= code < 300:
            token = data.get("access") if isinstance(data, dict) else None
            if isinstance(token, str) and token.strip():
                log.info("got a new access token from %s", self.uri)
                return token.strip()
            raise ConfigError(f"the token refresh reply from {self.uri} has no 'access' token")
        message = self._redact(body_message(body, data)) or "no details"
        text = f"the token refresh at {self.uri} failed (HTTP {code}): {message}"
        if code in (401, 403):
            raise AuthError(f"{text} — the refresh token was refused", refreshable=False)
        error: FedClientError = error_for(
            http_verdict(code), text, retry_after(response.headers.get("retry-after"))
        )
        raise error

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
