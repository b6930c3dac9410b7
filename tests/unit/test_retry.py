"""The backoff policy every transport shares."""

from __future__ import annotations

import pytest
from fedclient.domain.retry import RetryConfig, compute_backoff, may_retry
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
