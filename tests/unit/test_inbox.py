"""The task inbox: bounded, deduplicated, no stale rounds; every drop logged."""

from __future__ import annotations

import asyncio
import json

import pytest
from fedclient.adapters.combiner_grpc.vocabulary import task_of
from fedclient.domain.inbox import TaskInbox
from fedclient.domain.model import Task, TaskKind
from fedclient.domain.rounds import RoundWatch
from hypothesis import given
from hypothesis import strategies as st


def train(corr: str, round_id: str = "1", session: str = "s1", timeout: str = "60") -> Task:
    config = {"round_id": round_id, "round_timeout": timeout}
    return task_of(TaskKind.TRAIN, "g", session, corr, json.dumps(config), "combiner")


class Wall:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_redelivered_correlation_id_is_not_run_twice(caplog: pytest.LogCaptureFixture) -> None:
    inbox = TaskInbox(RoundWatch(), wall=Wall())
    assert inbox.admit(train("c1"))
    assert not inbox.admit(train("c1"))
    assert len(inbox) == 1 and "already received" in caplog.text


async def test_a_full_queue_drops_the_oldest_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    inbox = TaskInbox(RoundWatch(), limit=2, wall=Wall())
    for corr in ("a", "b", "c"):
        inbox.admit(Task(TaskKind.VALIDATE, "g", "s1", corr))
    assert [t.correlation_id for t, _ in inbox.dropped] == ["a"]
    assert "queue is full" in caplog.text
    assert (await inbox.get()).correlation_id == "b"


async def test_a_superseded_round_is_skipped() -> None:
    inbox = TaskInbox(RoundWatch(), wall=Wall())
    inbox.admit(train("old", "1"))
    inbox.admit(train("new", "2"))
    assert (await inbox.get()).correlation_id == "new"
    assert "superseded by round 2" in inbox.dropped[-1][1]


async def test_a_round_that_closed_while_waiting_is_skipped() -> None:
    wall = Wall()
    inbox = TaskInbox(RoundWatch(), wall=wall)
    inbox.admit(train("late", "1", timeout="30"))
    inbox.admit(Task(TaskKind.VALIDATE, "g", "s1", "v"))
    wall.now += 31
    assert (await inbox.get()).correlation_id == "v"
    assert "closed while the task waited" in inbox.dropped[-1][1]


async def test_drop_all_empties_the_queue_and_get_waits() -> None:
    inbox = TaskInbox(RoundWatch(), wall=Wall())
    inbox.admit(train("c1"))
    assert inbox.drop_all("reconnect") == 1
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    inbox.admit(train("c2", "2"))
    assert (await asyncio.wait_for(waiting, 1)).correlation_id == "c2"


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(1, 4)), max_size=40), st.integers(1, 5))
def test_never_more_than_the_limit_and_never_a_repeat(arrivals: list[tuple[str, int]], limit: int) -> None:
    inbox = TaskInbox(RoundWatch(), limit=limit, remember=8, wall=Wall())
    for corr, number in arrivals:
        inbox.admit(train(corr, str(number)))
        assert len(inbox) <= limit
    ids = [t.correlation_id for t in inbox._queue]
    assert len(ids) == len(set(ids))
