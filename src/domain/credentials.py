"""The access token every channel uses, and renewing it when a server says it has expired.

FEDn 0.33 defines the refresh as: POST the refresh token to a configured URI and take
the ``access`` token from the reply (the adapter, ``controller_http.refresh``, does the
HTTP part behind the ``TokenRefresher`` port). Here is the policy:

* one ``Credentials`` object is shared by the controller's HTTP client and every gRPC
  link, which read the token on each call - so after a refresh every channel continues
  with the new token, and no connection has to be rebuilt for it;
* a refresh happens once per refused token: callers that fail together with the same
  token share a single refresh (single flight), and one that failed with an older token
  just retries with the new one;
* a token that was refreshed and is refused again within ``cooldown`` seconds ends the
  client (the refresh evidently does not help), instead of refreshing in a loop.

Tokens never appear in log lines or messages; ``on_new_token`` lets the app register
each new one with its log scrubber.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import AuthError, FedClientError, TransientError
from .model import (
    AttributeReport,
    BackwardCompletion,
    MetricReport,
    ModelUpdate,
    Prediction,
    ResourceUsage,
    Task,
    TaskStatus,
    Validation,
)
from .ports import Clock, CombinerLink, Random, TokenRefresher
from .retry import RetryConfig, call_with_retry
from .wording import Form, SettingNames, field_names

log = logging.getLogger("fedclient.auth")
T = TypeVar("T")

REFRESH_RETRY = RetryConfig(initial=1.0, maximum=10.0, max_attempts=5)


def no_refresh_hint(names: SettingNames = field_names) -> str:
    """Why a refused token ends the client when no refresh token is configured."""
    token, uri = names("refresh_token", Form.ENV), names("refresh_token_uri", Form.ENV)
    return (
        f"no refresh token is configured ({token} and {uri}), "
        "so the client cannot renew it: give it a valid token"
    )


@dataclass(frozen=True)
class RefreshRules:
    """How a refused token is refreshed: the retries of one refresh, and the pause between two."""

    cooldown: float  # a token refreshed less than this long ago and refused again is final
    retry: RetryConfig


class Credentials:
    def __init__(
        self,
        token: str | None,
        refresher: TokenRefresher | None = None,
        clock: Clock | None = None,
        cooldown: float = 60.0,
        on_new_token: Callable[[str], None] | None = None,
        refresh_retry: RetryConfig = REFRESH_RETRY,
        random: Random | None = None,
        names: SettingNames = field_names,
    ) -> None:
        """``names``: how the final error's hint names the refresh settings (the app's spelling)."""
        if refresher is not None and (clock is None or random is None):
            raise ValueError(
                "refreshing the token needs a clock and a random source (its cooldown and retries)"
            )
        self._token = token or None
        self._refresher = refresher
        self._clock = clock
        self._random = random
        self._rules = RefreshRules(cooldown, refresh_retry)
        self._on_new_token = on_new_token
        self._names = names
        self._version = 0
        self._refreshed_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self._seen: list[str] = [token] if token else []
        self.refreshes = 0  # how many times a new token was obtained

    def __repr__(self) -> str:
        return f"Credentials(token={'set' if self._token else 'unset'}, refresh={self.can_refresh})"

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def version(self) -> int:
        """Bumped by every refresh; a caller remembers it to tell 'my token' from 'a newer one'."""
        return self._version

    @property
    def refresher(self) -> TokenRefresher | None:
        return self._refresher

    @property
    def can_refresh(self) -> bool:
        return self._refresher is not None

    def secrets(self) -> tuple[str, ...]:
        """Every token this process has held (to scrub from text a server echoes back)."""
        return tuple(self._seen)

    async def renew(self, seen_version: int, refused: AuthError) -> bool:
        """After ``refused`` (a call made with token ``seen_version``): True = retry with the current token.

        False means a fresh token cannot help: the error is not about expiry (403), no
        refresher is configured, or the token was refreshed moments ago and refused again.
        Raises AuthError when the refresh itself is refused or keeps failing.
        """
        if not refused.refreshable:
            return False
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._version != seen_version:
                return True  # someone refreshed while our call was failing
            if self._refresher is None or self._clock is None or self._random is None:
                return False
            clock, jitter = self._clock, self._random
            now = clock.monotonic()
            if self._refreshed_at is not None and now - self._refreshed_at < self._rules.cooldown:
                log.error("the refreshed token was refused too (%s); not refreshing again", refused)
                return False
            log.warning("token refused (%s); refreshing it", refused)
            refresher = self._refresher
            try:
                token = await call_with_retry(
                    refresher.refresh,
                    self._rules.retry,
                    clock.sleep,
                    "token refresh",
                    now=clock.monotonic,
                    rand=jitter.uniform,
                )
            except TransientError as exc:
                raise AuthError(f"the token was refused and could not be refreshed: {exc}") from None
            except FedClientError as exc:
                raise AuthError(f"the token was refused and its refresh failed: {exc}") from None
            self._token = token
            self._seen.append(token)
            self._version += 1
            self._refreshed_at = now
            self.refreshes += 1
            if self._on_new_token is not None:
                self._on_new_token(token)
            log.info("token refreshed (refresh %d); every channel continues with the new one", self.refreshes)
            return True

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn``; if its token is refused, renew once and run it again (a second refusal propagates)."""
        seen = self._version
        try:
            return await fn()
        except AuthError as exc:
            if not await self.renew(seen, exc):
                raise self.final(exc) from None
        return await fn()

    def final(self, refused: AuthError) -> AuthError:
        """The error that ends the client after ``refused``, saying why no refresh helped."""
        if not refused.refreshable or self._token is None:
            return refused
        if self._refresher is None:
            return AuthError(f"{refused} — {no_refresh_hint(self._names)}", refreshable=False)
        return AuthError(f"{refused} — the refreshed token was refused as well", refreshable=False)


class RefreshingLink:
    """A ``CombinerLink`` whose calls renew a refused token once and retry (``Credentials.call``).

    The task stream is not retried here: an open stream keeps the token it was opened
    with, and a stream refused at the start ends the session, whose owner renews and
    reconnects. Everything else - heartbeats, status, model transfer, results - goes
    on over the same connection with the new token.
    """

    def __init__(self, link: CombinerLink, credentials: Credentials) -> None:
        self.inner = link
        self._credentials = credentials

    def tasks(self) -> AsyncIterator[Task]:
        return self.inner.tasks()

    async def heartbeat(self, usage: ResourceUsage | None = None) -> None:
        await self._credentials.call(lambda: self.inner.heartbeat(usage))

    async def send_telemetry(self, usage: ResourceUsage) -> None:
        await self._credentials.call(lambda: self.inner.send_telemetry(usage))

    async def send_backward_completion(self, completion: BackwardCompletion) -> None:
        await self._credentials.call(lambda: self.inner.send_backward_completion(completion))

    async def send_status(self, report: TaskStatus) -> None:
        await self._credentials.call(lambda: self.inner.send_status(report))

    async def send_update(self, update: ModelUpdate) -> None:
        await self._credentials.call(lambda: self.inner.send_update(update))

    async def send_validation(self, validation: Validation) -> None:
        await self._credentials.call(lambda: self.inner.send_validation(validation))

    async def send_prediction(self, prediction: Prediction) -> None:
        await self._credentials.call(lambda: self.inner.send_prediction(prediction))

    async def send_metric(self, report: MetricReport) -> None:
        await self._credentials.call(lambda: self.inner.send_metric(report))

    async def send_attributes(self, report: AttributeReport) -> None:
        await self._credentials.call(lambda: self.inner.send_attributes(report))

    async def download(self, model_id: str, dest: Path) -> int:
        return await self._credentials.call(lambda: self.inner.download(model_id, dest))

    async def upload(self, model_id: str, src: Path) -> int:
        return await self._credentials.call(lambda: self.inner.upload(model_id, src))

    async def has_model(self, model_id: str) -> bool:
        return await self._credentials.call(lambda: self.inner.has_model(model_id))

    async def close(self) -> None:
        await self.inner.close()
