"""The backoff policy every transport shares."""

from __future__ import annotations

import pytest
from fedclient.domain.errors import TransientError
from fedclient.domain.retry import (
    RetryConfig,
    about,
    attempt_of,
    call_with_retry,
    compute_backoff,
    giving_up,
    longest_wait_ahead,
    may_retry,
)
from hypothesis import given
from hypothesis import strategies as st

configs = st.builds(
    RetryConfig,
    initial=st.floats(0.01, 10),
    multiplier=st.floats(1, 4),
    maximum=st.floats(10, 120),
    jitter=st.floats(0, 1),
)


@given(configs, st.integers(1, 10_000), st.floats(0, 1, exclude_max=True))
def test_backoff_is_bounded(config: RetryConfig, attempt: int, rand: float) -> None:
    assert 0 <= compute_backoff(attempt, config, rand) <= config.maximum


@given(configs, st.integers(1, 50))
def test_backoff_without_jitter_grows_monotonically(config: RetryConfig, attempt: int) -> None:
    flat = RetryConfig(config.initial, config.multiplier, config.maximum, jitter=0)
    assert compute_backoff(attempt, flat) <= compute_backoff(attempt + 1, flat)


def test_backoff_sequence() -> None:
    config = RetryConfig(initial=1, multiplier=2, maximum=10, jitter=0)
    assert [compute_backoff(n, config) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_attempt_limit() -> None:
    config = RetryConfig(max_attempts=3)
    assert [may_retry(n, config) for n in (1, 2, 3)] == [True, True, False]
    assert may_retry(10**6, RetryConfig())


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"initial": 5, "maximum": 1}, {"multiplier": 0.5}, {"jitter": 2}, {"max_attempts": 0}],
)
def test_bad_configs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryConfig(**kwargs)  # type: ignore[arg-type]


def test_the_longest_wait_ahead_sums_the_top_delays_still_to_come() -> None:
    config = RetryConfig(initial=1, multiplier=2, maximum=10, jitter=0, max_attempts=6)
    # After try 1 the wait before try 2 is under way; then 2, 4, 8 before tries 3, 4, 5... up to try 6.
    assert longest_wait_ahead(1, config) == 2 + 4 + 8 + 10
    assert longest_wait_ahead(5, config) == 0  # the wait under way is before the last try
    assert longest_wait_ahead(1, RetryConfig()) is None  # unbounded: no end to say


@given(
    configs, st.integers(1, 40), st.integers(0, 40), st.lists(st.floats(0, 1, exclude_max=True), min_size=40)
)
def test_no_draw_of_the_jitter_waits_longer_than_said(
    config: RetryConfig, limit: int, attempt: int, draws: list[float]
) -> None:
    bounded = RetryConfig(
        config.initial, config.multiplier, config.maximum, config.jitter, max_attempts=limit
    )
    ahead = longest_wait_ahead(attempt, bounded)
    assert ahead is not None
    waited = sum(compute_backoff(n, bounded, draws[n - 1]) for n in range(attempt + 1, limit))
    assert waited <= ahead + 1e-9


def test_attempts_and_durations_in_words() -> None:
    assert attempt_of(3, RetryConfig(max_attempts=30)) == "attempt 3 of 30"
    assert attempt_of(3, RetryConfig()) == "attempt 3"
    assert [about(s) for s in (45, 89.4, 1514, 9000)] == ["45 s", "89 s", "25 min", "2.5 h"]
    controller = RetryConfig(initial=2.0, maximum=60.0, max_attempts=30)  # ClientPlan.unreachable_retry
    assert giving_up(1, 2.0, controller, "it stays unreachable") == (
        "; giving up in about 25 min if it stays unreachable"
    )
    assert giving_up(1, 2.0, RetryConfig(), "it stays unreachable") == ""


@pytest.mark.parametrize(
    ("config", "said"),
    [
        (
            RetryConfig(initial=1, maximum=4, jitter=0, max_attempts=3),
            "download failed (down); attempt 1 of 3, retrying in 1.0 s; "
            "giving up in about 3 s if it keeps failing",
        ),
        (RetryConfig(initial=1, maximum=4, jitter=0), "download failed (down); attempt 1, retrying in 1.0 s"),
    ],
)
async def test_a_bounded_retry_says_attempt_n_of_m(
    config: RetryConfig, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransientError("down")
        return "ok"

    async def no_wait(_: float) -> None:
        return None

    assert (
        await call_with_retry(flaky, config, no_wait, "download", now=lambda: 0.0, rand=lambda: 0.5) == "ok"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings[0] == said
