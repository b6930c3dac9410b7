"""When to try again: one policy for every transport, pure and testable without waiting."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import TransientError

T = TypeVar("T")
log = logging.getLogger("fedclient.retry")


@dataclass(frozen=True)
class RetryConfig:
    """Capped exponential backoff with full jitter.

    ``max_attempts`` of ``None`` means "keep trying" — used only where giving up
    would lose work and the error is known to be transient.
    """

    initial: float = 1.0
    multiplier: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("retry delays must satisfy 0 < initial <= maximum")
        if self.multiplier < 1:
            raise ValueError("retry multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("retry jitter must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")


def compute_backoff(attempt: int, config: RetryConfig, rand: float = 0.5) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    ``rand`` in [0, 1) picks the jitter: callers draw it from their ``Random`` port. The
    default, 0.5, is the middle of the jitter band (no jitter at all).
    The result never exceeds ``config.maximum`` and never goes below zero.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    # Cap the exponent so huge attempt counts cannot overflow a float.
    exponent = min(attempt - 1, 64)
    base = min(config.initial * (config.multiplier**exponent), config.maximum)
    spread = base * config.jitter
    return max(0.0, min(config.maximum, base - spread + 2 * spread * rand))


def next_delay(
    attempt: int, config: RetryConfig, retry_after: float | None = None, rand: float = 0.5
) -> float:
    """The backoff for ``attempt``, but never shorter than the server's Retry-After wish.

    A Retry-After longer than ``config.maximum`` is honoured (the server knows when it
    will be back); the table caps it at ``failures.MAX_RETRY_AFTER`` when it is parsed.
    """
    delay = compute_backoff(attempt, config, rand)
    if retry_after is not None and retry_after > delay:
        return retry_after
    return delay


def longest_wait_ahead(attempt: int, config: RetryConfig) -> float | None:
    """The most backoff there can still be after the wait that follows failed try ``attempt``.

    The sum of the longest delays (jitter at its top) before tries ``attempt + 2`` up to
    ``max_attempts``: with the wait now under way it says when the last try starts at the
    latest (the tries themselves not counted, nor a server's longer Retry-After). None when
    the tries are unbounded.
    """
    if config.max_attempts is None:
        return None
    return sum(compute_backoff(n, config, rand=1.0) for n in range(attempt + 1, config.max_attempts))


def about(seconds: float) -> str:
    """A duration for a log line: ``45 s``, ``25 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def attempt_of(attempt: int, config: RetryConfig) -> str:
    """``attempt 3 of 30`` when the tries are bounded, ``attempt 3`` when they are not."""
    if config.max_attempts is None:
        return f"attempt {attempt}"
    return f"attempt {attempt} of {config.max_attempts}"


def giving_up(attempt: int, delay: float, config: RetryConfig, condition: str) -> str:
    """``; giving up in about 25 min if <condition>`` after failed try ``attempt`` ("" when unbounded).

    A duration, not a clock time: the domain reads no wall clock (its Clock port is monotonic).
    """
    ahead = longest_wait_ahead(attempt, config)
    if ahead is None:
        return ""
    return f"; giving up in about {about(delay + ahead)} if {condition}"


def may_retry(attempt: int, config: RetryConfig) -> bool:
    """Whether a further try is allowed after ``attempt`` tries have failed."""
    return config.max_attempts is None or attempt < config.max_attempts


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    config: RetryConfig,
    sleep: Callable[[float], Awaitable[None]],
    what: str,
    *,
    now: Callable[[], float],
    rand: Callable[[], float],
) -> T:
    """Run ``call`` until it succeeds, retrying TransientError with backoff; anything else propagates.

    Every backoff is logged with its attempt number and delay, and a success after
    failures says how many tries and how long it took. ``now`` is a monotonic clock
    (a Clock's ``monotonic``), ``rand`` the jitter's source (a Random port's ``random``).
    """
    attempt = 0
    started: float | None = None
    while True:
        attempt += 1
        try:
            result = await call()
        except TransientError as exc:
            if not may_retry(attempt, config):
                raise
            if started is None:
                started = now()
            delay = next_delay(attempt, config, exc.retry_after, rand())
            log.warning(
                "%s failed (%s); %s, retrying in %.1f s%s",
                what,
                exc,
                attempt_of(attempt, config),
                delay,
                giving_up(attempt, delay, config, "it keeps failing"),
            )
            await sleep(delay)
            continue
        if started is not None:
            log.info("%s succeeded after %d tries, %.0f s", what, attempt, now() - started)
        return result
