"""Token refresh over fakes: refused once -> refreshed once -> every channel goes on with the new token."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fedclient.app.setting_names import spell
from fedclient.domain.credentials import Credentials
from fedclient.domain.errors import AuthError, TransientError
from fedclient.domain.model import Assignment, AssignmentStatus
from fedclient.testing.fakes import FakeClock, InMemoryTokenRefresher, SeededRandom

from tests.unit.world import ASSIGNED, World, train_task

# What the user reads when a refused token cannot be renewed (the app names the settings).
NO_REFRESH_HINT = (
    "no refresh token is configured (FEDN_AUTH_REFRESH_TOKEN and FEDN_AUTH_REFRESH_TOKEN_URI), "
    "so the client cannot renew it: give it a valid token"
)
EXPIRED = Assignment(AssignmentStatus.UNAUTHORIZED, "the controller refused our credentials: Token expired")


def world(tmp_path: Path, archive: Path, *answers: Assignment, refresh: bool = True) -> World:
    clock = FakeClock()
    refresher = InMemoryTokenRefresher()
    credentials = Credentials(
        "token-0", refresher if refresh else None, clock, random=SeededRandom(), names=spell
    )
    w = World(tmp_path, archive, *answers, credentials=credentials, clock=clock)
    refresher.combiner = w.combiner
    w.refresher = refresher  # type: ignore[attr-defined]
    return w


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.002)


async def test_a_token_expiring_mid_session_is_refreshed_once_without_a_reconnect(
    tmp_path: Path, archive: Path
) -> None:
    w = world(tmp_path, archive)
    refresher: InMemoryTokenRefresher = w.refresher  # type: ignore[attr-defined]
    w.combiner.valid_tokens = {"token-0"}
    runner = asyncio.create_task(w.life.run(w.stop))
    try:
        await wait_for(lambda: len(w.combiner.heartbeats) >= 2)
        w.combiner.valid_tokens.discard("token-0")  # the token expires
        await wait_for(lambda: refresher.issued and len(w.combiner.heartbeats) >= 4)
        w.combiner.submit("cid-1", train_task())
        await wait_for(lambda: bool(w.combiner.updates))
    finally:
        w.stop.set()
        await asyncio.wait_for(runner, 5)
    assert refresher.calls == 1
    assert len(w.combiner.connects) == 1, "no reconnect for a refresh"
    tokens = [token for _, token in w.combiner.attempts]
    last_old = len(tokens) - 1 - tokens[::-1].index("token-0")
    assert w.combiner.attempts[last_old][0] == "heartbeat", "the expired token was refused on a heartbeat"
    after = w.combiner.attempts[last_old + 1 :]
    assert after and {token for _, token in after} == {"token-1"}, "every later call uses the new token"
    assert len(w.combiner.updates) == 1


async def test_a_task_stream_refused_at_open_is_renewed_and_reopened_once(
    tmp_path: Path, archive: Path
) -> None:
    w = world(tmp_path, archive)
    refresher: InMemoryTokenRefresher = w.refresher  # type: ignore[attr-defined]
    w.combiner.valid_tokens = set()  # token-0 already expired when the client connects
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert refresher.calls == 1
    assert len(w.combiner.connects) == 2
    assert [t for n, t in w.combiner.attempts if n == "tasks"] == ["token-0", "token-1"]


async def test_rest_token_expired_is_refreshed_and_the_request_repeated(
    tmp_path: Path, archive: Path
) -> None:
    w = world(tmp_path, archive, EXPIRED, ASSIGNED)
    await w.run_until(lambda: bool(w.combiner.connects))
    assert w.refresher.calls == 1  # type: ignore[attr-defined]
    assert len(w.discovery.requests) == 2
    assert w.life.credentials.token == "token-1"


async def test_without_a_refresh_token_the_client_stops_with_a_clear_message(
    tmp_path: Path, archive: Path
) -> None:
    w = world(tmp_path, archive, EXPIRED, ASSIGNED, refresh=False)
    with pytest.raises(AuthError) as err:
        await w.life.run(w.stop)
    assert "Token expired" in str(err.value) and NO_REFRESH_HINT in str(err.value)
    assert len(w.discovery.requests) == 1


async def test_a_refreshed_token_refused_again_stops_the_client(tmp_path: Path, archive: Path) -> None:
    w = world(tmp_path, archive, EXPIRED)
    with pytest.raises(AuthError, match="the refreshed token was refused as well"):
        await w.life.run(w.stop)
    assert w.refresher.calls == 1  # type: ignore[attr-defined]
    assert len(w.discovery.requests) == 2


async def test_a_forbidden_token_is_not_refreshed(tmp_path: Path, archive: Path) -> None:
    forbidden = Assignment(AssignmentStatus.UNAUTHORIZED, "HTTP 403: Forbidden", refreshable=False)
    w = world(tmp_path, archive, forbidden)
    with pytest.raises(AuthError, match="Forbidden"):
        await w.life.run(w.stop)
    assert w.refresher.calls == 0  # type: ignore[attr-defined]


async def test_a_failing_refresh_stops_the_client(tmp_path: Path, archive: Path) -> None:
    w = world(tmp_path, archive, EXPIRED, ASSIGNED)
    w.refresher.fail_with = AuthError("the refresh token was refused", refreshable=False)  # type: ignore[attr-defined]
    with pytest.raises(AuthError, match="its refresh failed: the refresh token was refused"):
        await w.life.run(w.stop)


async def test_an_unreachable_refresh_endpoint_is_retried_a_bounded_number_of_times() -> None:
    refresher = InMemoryTokenRefresher()
    refresher.fail_with = TransientError("connection refused")
    creds = Credentials("token-0", refresher, FakeClock(), random=SeededRandom())
    with pytest.raises(AuthError, match="could not be refreshed"):
        await creds.renew(0, AuthError("Token expired"))
    assert refresher.calls == 5


async def test_calls_failing_together_share_one_refresh() -> None:
    refresher = InMemoryTokenRefresher()
    refresher.gate = asyncio.Event()
    creds = Credentials("token-0", refresher, FakeClock(), random=SeededRandom())
    used: list[str | None] = []
    all_refused = asyncio.Event()

    async def call() -> str:
        used.append(creds.token)
        if creds.token == "token-0":
            if used.count("token-0") == 5:
                all_refused.set()
            raise AuthError("Invalid token")
        return "ok"

    calls = [asyncio.create_task(creds.call(call)) for _ in range(5)]
    await asyncio.wait_for(all_refused.wait(), 5)  # every call failed with the old token...
    assert refresher.calls == 1  # ...and the one refresh is held at the gate
    refresher.gate.set()
    assert await asyncio.gather(*calls) == ["ok"] * 5
    assert refresher.calls == 1
    assert used.count("token-0") == 5 and used.count("token-1") == 5


async def test_a_token_that_worked_for_a_while_may_be_refreshed_again() -> None:
    clock = FakeClock()
    refresher = InMemoryTokenRefresher()
    creds = Credentials("token-0", refresher, clock, cooldown=60, random=SeededRandom())
    assert await creds.renew(creds.version, AuthError("Token expired"))
    await clock.sleep(3600)  # an hour later the new one expires too
    assert await creds.renew(creds.version, AuthError("Token expired"))
    assert creds.token == "token-2" and refresher.calls == 2
    assert not await creds.renew(creds.version, AuthError("Invalid token")), "refused right after a refresh"
    assert creds.secrets() == ("token-0", "token-1", "token-2")
