"""SIGINT/SIGTERM handling shared by every client in a process (app.signals)."""

from __future__ import annotations

import asyncio
import os
import signal

from fedclient.app.signals import stop_on_signals


async def _delivered(event: asyncio.Event) -> bool:
    try:
        await asyncio.wait_for(event.wait(), 5)
    except TimeoutError:
        return False
    return True


async def test_two_clients_on_one_loop_are_both_stopped_and_the_last_one_out_restores_the_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    first, second = asyncio.Event(), asyncio.Event()
    with stop_on_signals(first, lambda: "one"):
        with stop_on_signals(second, lambda: "two"):
            os.kill(os.getpid(), signal.SIGTERM)
            assert await _delivered(first) and await _delivered(second)
        # the inner one closed: the outer still owns the signals (they are not left ignored)
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


async def test_after_an_inner_client_ends_a_signal_still_stops_the_outer_one() -> None:
    outer = asyncio.Event()
    with stop_on_signals(outer, lambda: "outer"):
        with stop_on_signals(asyncio.Event(), lambda: "inner"):
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        assert await _delivered(outer)
