"""Graceful shutdown: stop taking tasks, let the running one finish within the grace period, flush, close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fedclient.testing.fakes import FakeClock, InMemoryTrainer

from tests.unit.world import World, train_task

GRACE = 77.0


class GraceClock(FakeClock):
    """Fake time, except that the grace period lasts until the test says it is over."""

    def __init__(self) -> None:
        super().__init__()
        self.grace_over = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        if seconds == GRACE:
            await self.grace_over.wait()
        await super().sleep(seconds)


class SlowTrainer(InMemoryTrainer):
    def __init__(self) -> None:
        super().__init__(num_examples=5)
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return await super().train(in_model, out_model, client_settings)


def world(tmp_path: Path, archive: Path, **plan: Any) -> tuple[World, SlowTrainer, GraceClock, list[str]]:
    trainer = SlowTrainer()
    clock = GraceClock()
    w = World(tmp_path, archive, trainer=trainer, shutdown_grace=GRACE, clock=clock, **plan)
    events: list[str] = []

    async def flush() -> None:
        link = w.life.links.current()
        events.append(f"flush: {len(w.combiner.updates)} updates, link {'open' if link else 'gone'}")

    w.life.shutdown_hooks.append(flush)
    return w, trainer, clock, events


async def test_the_running_task_finishes_then_hooks_run_then_the_link_closes(
    tmp_path: Path, archive: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="fedclient")
    w, trainer, _, events = world(tmp_path, archive)
    w.combiner.submit("cid-1", train_task(corr="running"))
    w.combiner.submit("cid-1", train_task(corr="queued"))
    runner = asyncio.create_task(w.life.run(w.stop))
    await asyncio.wait_for(trainer.started.wait(), 5)
    # what the app's stop line says (app.signals): the running task and its grace period
    assert w.life.stop_outlook() == "waiting for the running train task, up to 77 s"
    w.stop.set()
    await asyncio.sleep(0.05)
    assert not runner.done(), "waits for the running task"
    trainer.release.set()
    await asyncio.wait_for(runner, 5)  # returns normally: exit code 0 in the CLI
    assert w.life.stop_outlook() == "no task is running"

    [update] = w.combiner.updates
    assert update.correlation_id == "running"
    assert [c[0] for c in trainer.calls] == ["train"], "the queued task was not started"
    assert events == ["flush: 1 updates, link open"]
    assert w.combiner.connects and all(link.closed for link in w.container.connector().links)  # type: ignore[attr-defined]
    lines = [r.getMessage() for r in caplog.records]
    assert any("stopping: no new tasks; waiting for the running train task, up to 77 s" in ln for ln in lines)


async def test_a_task_past_the_grace_period_is_cancelled_and_hooks_still_run(
    tmp_path: Path, archive: Path
) -> None:
    w, trainer, clock, events = world(tmp_path, archive)
    w.combiner.submit("cid-1", train_task())
    runner = asyncio.create_task(w.life.run(w.stop))
    await asyncio.wait_for(trainer.started.wait(), 5)
    w.stop.set()
    await asyncio.sleep(0.02)
    clock.grace_over.set()
    await asyncio.wait_for(runner, 5)
    assert trainer.cancelled
    assert not w.combiner.updates
    assert events == ["flush: 0 updates, link open"]


async def test_an_idle_client_stops_at_once(tmp_path: Path, archive: Path) -> None:
    w, _, _, events = world(tmp_path, archive)
    runner = asyncio.create_task(w.life.run(w.stop))
    async with asyncio.timeout(5):
        while not w.combiner.heartbeats:
            await asyncio.sleep(0.002)
    w.stop.set()
    await asyncio.wait_for(runner, 1)
    assert events == ["flush: 0 updates, link open"]


async def test_a_hanging_hook_is_bounded(tmp_path: Path, archive: Path) -> None:
    w, _, _, events = world(tmp_path, archive, flush_timeout=0.05)

    async def hang() -> None:
        await asyncio.Event().wait()

    w.life.shutdown_hooks.insert(0, hang)
    runner = asyncio.create_task(w.life.run(w.stop))
    async with asyncio.timeout(5):
        while not w.combiner.heartbeats:
            await asyncio.sleep(0.002)
    w.stop.set()
    await asyncio.wait_for(runner, 2)
    assert events == ["flush: 0 updates, link open"], "the next hook still ran"
