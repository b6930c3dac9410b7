"""The Assigner alone: it answers with the combiner and identity, keeps nothing, honours budget and stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fedclient.domain.assigner import Assigned, Assigner
from fedclient.domain.credentials import Credentials
from fedclient.domain.errors import AuthError, ConfigError
from fedclient.domain.lifecycle import ClientPlan
from fedclient.domain.model import Assignment, AssignmentStatus, Identity, PackageMode
from fedclient.domain.stopping import Stopped
from fedclient.testing.fakes import FakeClock, InMemoryDiscovery, SeededRandom

from tests.unit.world import ASSIGNED, COMBINER

PLAN = ClientPlan(identity=Identity("alice", "cid-0"), work_dir=Path("unused"))
TRY_AGAIN = Assignment(AssignmentStatus.TRY_AGAIN, "No compute package found.")


def assigner(*answers: Assignment, discovery: InMemoryDiscovery | None = None) -> Assigner:
    return Assigner(
        PLAN, discovery or InMemoryDiscovery(*answers), Credentials(None), FakeClock(), SeededRandom()
    )


async def test_the_answer_names_the_combiner_and_the_identity_the_controller_gave() -> None:
    a = assigner(ASSIGNED)
    assigned = await a.assign()
    assert assigned == Assigned(ASSIGNED, COMBINER, Identity("alice", "cid-1"))
    assert a.plan.identity == Identity("alice", "cid-0"), "the plan is not changed"
    [request] = a.discovery.requests  # type: ignore[union-attr]
    assert (request.identity, request.package) == (Identity("alice", "cid-0"), PackageMode.REMOTE)


async def test_the_plans_own_id_given_back_is_no_new_identity() -> None:
    same = Assignment(AssignmentStatus.ASSIGNED, combiner=COMBINER, client_id="cid-0")
    assigned = await assigner(same).assign()
    assert assigned is not None and assigned.identity is None


async def test_a_budget_bounds_the_asks_and_ends_with_no_answer() -> None:
    a = assigner(TRY_AGAIN)
    assert await a.assign(budget=3) is None
    assert len(a.discovery.requests) == 3  # type: ignore[union-attr]
    assert len(a.clock.sleeps) == 2  # type: ignore[attr-defined]  # no wait after the last ask


async def test_stop_ends_the_wait_between_asks() -> None:
    a = assigner(TRY_AGAIN)
    stop = asyncio.Event()
    asking = asyncio.create_task(a.assign(stop))
    async with asyncio.timeout(5):
        while len(a.discovery.requests) < 2:  # type: ignore[union-attr]
            await asyncio.sleep(0.002)
    stop.set()
    with pytest.raises(Stopped):
        await asyncio.wait_for(asking, 2)


async def test_refusals_are_final_without_a_way_to_renew() -> None:
    with pytest.raises(AuthError, match="Token expired"):
        await assigner(Assignment(AssignmentStatus.UNAUTHORIZED, "Token expired")).assign()
    with pytest.raises(ConfigError, match="no controller configured"):
        await Assigner(PLAN, None, Credentials(None), FakeClock(), SeededRandom()).assign()
