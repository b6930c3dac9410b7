"""Expiring access tokens for the sandbox, and the refresh endpoint's side of FEDn's token refresh.

FEDn 0.33 checks a JWT's ``exp`` on every REST request and every gRPC call (the
controller answers 401 "Token expired"; the combiner's interceptor answers
UNAUTHENTICATED "Invalid token", because it tests for the general invalid-token case
before the expired one). The refresh itself is not the 0.33 controller's: a client POSTs
``{"refresh": <refresh token>}`` to a configured URI and reads ``access`` from the reply.
The sandbox controller serves that URI at ``REFRESH_PATH`` when it has a ``SandboxTokens``.

Tokens here are random strings with an expiry, not JWTs: the client treats tokens as
opaque, so the sandbox needs nothing more. Every check that fails and every refresh is
recorded, so tests can count refreshes and refusals (a reconnect storm would show).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

REFRESH_PATH = "/api/auth/refresh"
EXPIRED_REST = "Token expired"
INVALID = "Invalid token"


class SandboxTokens:
    def __init__(
        self, ttl: float, refresh_token: str | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.refresh_token = refresh_token or f"sandbox-refresh-{secrets.token_urlsafe(16)}"
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self.minted: list[str] = []
        self.refreshes = 0
        self.refused: list[tuple[str, str]] = []  # (where, reason) of each refused check

    def mint(self, ttl: float | None = None) -> str:
        token = f"sandbox-access-{secrets.token_urlsafe(16)}"
        with self._lock:
            self._expiry[token] = self._clock() + (self.ttl if ttl is None else ttl)
            self.minted.append(token)
        return token

    def check(self, token: str | None, where: str) -> str | None:
        """None when ``token`` is valid now, else FEDn's REST reason (``Token expired``/``Invalid token``)."""
        with self._lock:
            expiry = self._expiry.get(token or "")
            if expiry is None:
                reason = INVALID
            elif self._clock() >= expiry:
                reason = EXPIRED_REST
            else:
                return None
            self.refused.append((where, reason))
            return reason

    def expire_all(self) -> None:
        """Make every token minted so far expire now (a test's way to skip ahead)."""
        with self._lock:
            now = self._clock()
            for token in self._expiry:
                self._expiry[token] = min(self._expiry[token], now)

    def refresh(self, refresh_token: object) -> str | None:
        """A new access token for the right refresh token, else None."""
        if not isinstance(refresh_token, str) or not secrets.compare_digest(
            refresh_token.encode(), self.refresh_token.encode()
        ):
            return None
        with self._lock:
            self.refreshes += 1
        return self.mint()
