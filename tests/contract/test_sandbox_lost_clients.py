"""The sandbox combiner stops waiting for clients declared lost (`simulate --ray` when a node dies)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.model import TaskKind


async def test_a_round_waits_for_each_task_until_its_client_is_declared_lost(tmp_path: Path) -> None:
    combiner = SandboxCombiner(tmp_path / "models")
    asks = [combiner.submit_task(client, TaskKind.TRAIN, "seed") for client in ("a", "b")]
    waiting = asyncio.create_task(combiner.wait_for_answers(combiner.updates, asks, timeout=60))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await combiner.lose_clients(["a"])
    await asyncio.sleep(0.2)
    assert not waiting.done(), "b's task is still owed"
    await combiner.lose_clients(["b"])
    updates, failed = await asyncio.wait_for(waiting, 5)
    assert updates == [] and failed == []
    assert combiner.lost == {"a", "b"}
