"""A real client (production container, real adapters) rides out combiner drops and restarts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.federation import Federation
from fedclient.app.container import build_container, client_lifecycle
from fedclient.app.settings_load import load_settings
from fedclient.domain.lifecycle import Lifecycle


@pytest.fixture
async def running(tmp_path: Path, digits: Path) -> AsyncIterator[tuple[Federation, Lifecycle]]:
    fed = Federation(digits, tmp_path / "server", expected_clients=1, round_timeout=60)
    await fed.start()
    settings = load_settings({"api_url": fed.api_url, "name": "steady", "work_dir": tmp_path / "client"})
    stop = asyncio.Event()
    try:
        async with client_lifecycle(build_container(settings)) as life:
            runner = asyncio.create_task(life.run(stop))
            try:
                await fed.wait_for_clients(timeout=60)
                yield fed, life
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runner, 15)
    finally:
        await fed.stop()
    assert runner.done() and runner.exception() is None, "the client stopped cleanly"


async def test_a_dropped_task_stream_is_reopened_and_the_next_round_completes(
    running: tuple[Federation, Lifecycle],
) -> None:
    fed, life = running
    assert fed.combiner is not None
    [first] = await fed.run(1)
    await fed.combiner.kick_clients()
    await fed.wait_for_clients(timeout=30)
    second = await fed.run_round(2, first.model_id)
    assert (first.updates, second.updates) == (1, 1)
    assert life.connects >= 2


async def test_a_combiner_restart_costs_no_round(running: tuple[Federation, Lifecycle]) -> None:
    fed, life = running
    combiner = fed.combiner
    assert combiner is not None
    [first] = await fed.run(1)
    host, port = combiner.address
    await combiner.stop()
    await asyncio.sleep(1.5)  # the client notices and backs off
    await combiner.start(host, port)
    await fed.wait_for_clients(timeout=60)
    second = await fed.run_round(2, first.model_id)
    assert second.updates == 1 and second.validations == 1
    assert life.connects >= 2
