"""Status reports do not hold a task up: they go out in the background, in order, before handle() returns."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.vocabulary import task_of
from fedclient.domain.errors import AuthError
from fedclient.domain.links import LinkHolder
from fedclient.domain.model import Identity, Task, TaskKind, TaskStatus
from fedclient.domain.tasks import TaskRunner
from fedclient.testing.fakes import (
    CountingIds,
    FakeClock,
    InMemoryCombiner,
    InMemoryLink,
    InMemoryTrainer,
    SeededRandom,
)

from tests.unit.world import task_runner


class SlowStatusLink(InMemoryLink):
    """Every status takes ``delay`` seconds to be acknowledged; records when each call began and ended."""

    def __init__(self, combiner: InMemoryCombiner, delay: float) -> None:
        super().__init__(combiner, Identity("a", "cid"))
        self.delay = delay
        self.events: list[str] = []

    async def send_status(self, report: TaskStatus) -> None:
        self.events.append(f"status> {report.describe()}")
        await asyncio.sleep(self.delay)
        await super().send_status(report)
        self.events.append(f"status< {report.describe()}")

    async def download(self, model_id: str, dest: Path) -> int:
        self.events.append("download")
        return await super().download(model_id, dest)


def runner(tmp_path: Path, link: InMemoryLink) -> TaskRunner:
    links = LinkHolder()
    links.set(link)
    return task_runner(
        links, InMemoryTrainer(), tmp_path, clock=FakeClock(), ids=CountingIds(), random=SeededRandom()
    )


async def test_training_starts_before_the_first_status_is_acknowledged(tmp_path: Path) -> None:
    combiner = InMemoryCombiner(models={"m": b"seed"})
    link = SlowStatusLink(combiner, delay=0.2)
    task = task_of(TaskKind.TRAIN, "m", "s", "c1", '{"round_id": "1"}', "combiner")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    outcome = await runner(tmp_path, link).handle(task)
    assert outcome.ok
    # The download began while the first status was still in flight ...
    first_ack = next(i for i, e in enumerate(link.events) if e.startswith("status<"))
    assert link.events.index("download") < first_ack
    assert combiner.updates and combiner.updates[0].correlation_id == "c1"
    # ... every status went out, one after another, in the order the task made them ...
    sent = [s.stage for s in combiner.statuses]
    assert len(sent) == 3 and sent[-1] != sent[0]
    starts = [e for e in link.events if e.startswith("status>")]
    ends = [e for e in link.events if e.startswith("status<")]
    assert [e[8:] for e in starts] == [e[8:] for e in ends]
    for i in range(1, len(starts)):
        assert link.events.index(ends[i - 1]) < link.events.index(starts[i])
    # ... and handle() returned only once they were all out (3 x 0.2 s, not 3 x 0.2 s + the work).
    assert loop.time() - t0 >= 0.6


async def test_an_auth_error_on_a_status_still_ends_the_task_with_it(tmp_path: Path) -> None:
    combiner = InMemoryCombiner(models={"m": b"seed"})
    combiner.fail_next["send_status"] = 1
    combiner.fail_with["send_status"] = AuthError("token expired")
    link = InMemoryLink(combiner, Identity("a", "cid"))
    with pytest.raises(AuthError, match="token expired"):
        await runner(tmp_path, link).handle(Task(TaskKind.VALIDATE, "m", "s", "c2", "", "combiner"))
    assert combiner.validations and combiner.validations[0].correlation_id == "c2"
