"""Waiting that watches the stop event: every wait of the client's life ends promptly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from .ports import Clock


class Stopped(Exception):
    """The stop event was set while the lifecycle was waiting."""


async def stopped_first(stop: asyncio.Event, sleeper: Awaitable[None]) -> bool:
    """Sleep unless stop is set first; True if stopped."""
    sleep_task = asyncio.ensure_future(sleeper)
    stop_task = asyncio.create_task(stop.wait())
    done, pending = await asyncio.wait({sleep_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return stop_task in done


async def pause(stop: asyncio.Event, clock: Clock, seconds: float) -> None:
    """Wait ``seconds``; raise Stopped if the client is stopped meanwhile."""
    if await stopped_first(stop, clock.sleep(seconds)):
        raise Stopped


async def until_stopped(stop: asyncio.Event, work: Awaitable[None]) -> None:
    """Run ``work`` (e.g. an env build that takes minutes), cancelling it if stop is set."""
    job = asyncio.ensure_future(work)
    if await stopped_first(stop, job):
        raise Stopped
    job.result()
