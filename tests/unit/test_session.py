"""The session supervisor alone (no lifecycle): its parts from the container's client graph over fakes.

It serves from a given combiner, reconnects with the plan's backoff, asks the assigner
again after ``reassign_after`` failed connections, and on stop runs its hooks and closes the link.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fedclient.adapters.package_cache import DiskPackageCache
from fedclient.app.client_graph import ClientGraph
from fedclient.domain.connection import Where
from fedclient.domain.credentials import Credentials
from fedclient.domain.lifecycle import ClientPlan
from fedclient.domain.model import Assignment, AssignmentStatus, CombinerAddress, Identity
from fedclient.domain.retry import RetryConfig
from fedclient.testing.fakes import (
    CountingIds,
    FakeClock,
    FakeScratch,
    InMemoryCombiner,
    InMemoryConnector,
    InMemoryDiscovery,
    InMemoryOutboxStore,
    InMemoryTrainer,
    InMemoryUnpacker,
    SeededRandom,
)

from tests.unit.world import COMBINER, train_task

OTHER = CombinerAddress("10.0.0.2", 12080)
ALICE = Identity("alice", "cid-0")


def graph(tmp_path: Path, combiner: InMemoryCombiner, *answers: Assignment, **plan_kw: object) -> ClientGraph:
    plan = ClientPlan(identity=ALICE, work_dir=tmp_path, **plan_kw)  # type: ignore[arg-type]
    credentials = Credentials(None)
    return ClientGraph(
        plan=plan,
        discovery=InMemoryDiscovery(*answers) if answers else None,
        unpacker=InMemoryUnpacker(),
        connector=InMemoryConnector(combiner, credentials),
        trainer_factory=None,
        credentials=credentials,
        clock=FakeClock(),
        ids=CountingIds(),
        random=SeededRandom(),
        outbox_store=InMemoryOutboxStore(tmp_path / "outbox"),
        package_cache=DiskPackageCache(),
        scratch=FakeScratch(),
    )


async def serve_until(g: ClientGraph, done: object) -> list[str]:
    """Serve with an in-memory trainer until ``done()``, then stop; the hooks that ran."""
    supervisor, stop, ran = g.supervisor(), asyncio.Event(), []

    async def hook() -> None:
        ran.append("hook")

    supervisor.shutdown_hooks.append(hook)
    supervisor.start(stop)
    supervisor.where = Where(COMBINER, ALICE)  # what the lifecycle sets once assigned
    runner = g.task_runner()(trainer=InMemoryTrainer(num_examples=7), model_suffix=".npz")
    serving = asyncio.create_task(supervisor.serve(runner))
    try:
        async with asyncio.timeout(5):
            while not done():  # type: ignore[operator]
                assert not serving.done(), serving.result()
                await asyncio.sleep(0.002)
    finally:
        stop.set()
        await asyncio.wait_for(serving, 5)
    return ran


async def test_it_serves_reconnects_with_the_plans_backoff_and_closes_on_stop(tmp_path: Path) -> None:
    combiner = InMemoryCombiner(models={"seed": b"seed"})
    combiner.refuse_connects = 2
    g = graph(tmp_path, combiner, reconnect_retry=RetryConfig(initial=0.25, maximum=0.25, jitter=0))
    combiner.submit("cid-0", train_task())
    ran = await serve_until(g, lambda: bool(combiner.updates))
    assert [address for address, _ in combiner.connects] == [COMBINER] * 3
    assert g.clock().sleeps.count(0.25) == 2, "one backoff per refused connection"
    assert g.supervisor().where == Where(COMBINER, ALICE), "no controller: the combiner is kept"
    assert ran == ["hook"] and g.links().current() is None, "hooks ran, then the link was closed"
    assert g.supervisor().stop_outlook() == "no task is running"


async def test_after_reassign_after_failures_the_assigner_moves_it(tmp_path: Path) -> None:
    combiner = InMemoryCombiner(models={"seed": b"seed"})
    combiner.refuse_connects = 2
    moved = Assignment(AssignmentStatus.ASSIGNED, combiner=OTHER, client_id="cid-9")
    g = graph(tmp_path, combiner, moved, reassign_after=2)
    await serve_until(g, lambda: len(combiner.connects) == 3)
    assert [address for address, _ in combiner.connects] == [COMBINER, COMBINER, OTHER]
    assert combiner.connects[-1][1] == Identity("alice", "cid-9")
    assert g.supervisor().reassignments == 1
    assert g.supervisor().client_id() == "cid-9", "the task runner reports the new id"
