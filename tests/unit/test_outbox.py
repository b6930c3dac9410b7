"""The outbox: crash points between write, send and ack; round rules; ambiguous sends."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fedclient.adapters.outbox_store import FileOutboxStore
from fedclient.domain.links import LinkHolder
from fedclient.domain.model import Identity, ModelUpdate, Task, TaskKind
from fedclient.domain.outbox import Delivery, Outbox, OutboxEntry, OutboxLedger, ResultKind, stale_reason
from fedclient.domain.results import TrainingOutcome, ValidationOutcome
from fedclient.domain.retry import RetryConfig
from fedclient.domain.rounds import RoundWatch
from fedclient.testing.fakes import (
    CountingIds,
    FakeClock,
    InMemoryCombiner,
    InMemoryLink,
    InMemoryOutboxStore,
    SeededRandom,
)

ME = Identity("alice", "cid-1")
FAST = RetryConfig(initial=0.01, maximum=0.05)


class Crash(BaseException):
    """The process dies here (nothing after this line of the client runs)."""


def entry(key: str = "k1", round_id: str = "3", expires_in: float = 600.0, **kw: Any) -> OutboxEntry:
    now = time.time()
    fields: dict[str, Any] = {
        "key": key,
        "kind": ResultKind.UPDATE,
        "model_id": "global-1",
        "receiver_name": "combiner",
        "correlation_id": f"corr-{key}",
        "session_id": "s1",
        "round_id": round_id,
        "payload": TrainingOutcome({"num_examples": 5}, fetch=0.5, execute=2.0),
        "task_data": "{}",
        "created_at": now,
        "expires_at": now + expires_in,
    }
    fields.update(kw)
    return OutboxEntry(**fields)


def world(store: Any, combiner: InMemoryCombiner | None = None) -> tuple[InMemoryCombiner, Outbox]:
    combiner = combiner or InMemoryCombiner(models={"global-1": b"g"})
    links = LinkHolder(wait_limit=0.2)
    links.set(InMemoryLink(combiner, ME))
    return combiner, Outbox(
        OutboxLedger(store), links, FakeClock(), FAST, ids=CountingIds(), random=SeededRandom()
    )


def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "out.npz"
    path.write_bytes(b"trained")
    return path


async def test_an_acknowledged_update_is_sent_once_and_removed(tmp_path: Path) -> None:
    store = InMemoryOutboxStore(tmp_path / "box")
    combiner, outbox = world(store)
    await outbox.add(entry(), model_file(tmp_path))
    assert store.operations[0] == ("save", "k1"), "written before anything is sent"
    assert await outbox.deliver("k1") is Delivery.DELIVERED
    [update] = combiner.updates
    assert combiner.tries("upload") == 1 and combiner.tries("send_update") == 1
    assert combiner.models[update.model_update_id] == b"trained"
    assert store.operations[-1] == ("remove", "k1") and not store.entries


async def test_a_send_that_never_left_is_repeated_without_uploading_again(tmp_path: Path) -> None:
    combiner, outbox = world(InMemoryOutboxStore(tmp_path / "box"))
    combiner.fail_next["send_update"] = 3
    await outbox.add(entry(), model_file(tmp_path))
    assert await outbox.deliver("k1") is Delivery.DELIVERED
    assert len(combiner.updates) == 1
    assert combiner.tries("upload") == 1 and combiner.tries("send_update") == 4


async def test_a_failed_upload_is_retried_under_a_fresh_id(tmp_path: Path) -> None:
    combiner, outbox = world(InMemoryOutboxStore(tmp_path / "box"))
    combiner.fail_next["upload"] = 2
    await outbox.add(entry(), model_file(tmp_path))
    assert await outbox.deliver("k1") is Delivery.DELIVERED
    ids = [subject for name, subject in combiner.subjects if name == "upload"]
    assert len(ids) == len(set(ids)) == 3, "FEDn appends to a half-written file of the same id"
    assert [u.model_update_id for u in combiner.updates] == [ids[-1]]


async def test_an_ambiguous_send_is_not_repeated(tmp_path: Path) -> None:
    combiner, outbox = world(InMemoryOutboxStore(tmp_path / "box"))
    combiner.lose_reply_next["send_update"] = 1
    await outbox.add(entry(), model_file(tmp_path))
    assert await outbox.deliver("k1") is Delivery.UNCERTAIN
    assert combiner.tries("send_update") == 1 and len(combiner.updates) == 1
    assert outbox.history[-1].outcome is Delivery.UNCERTAIN
    assert "does not deduplicate" in outbox.history[-1].reason


async def test_no_connection_leaves_it_pending_and_a_flush_delivers_it(tmp_path: Path) -> None:
    store = InMemoryOutboxStore(tmp_path / "box")
    combiner, outbox = world(store)
    link = outbox.links.take()
    await outbox.add(entry(), model_file(tmp_path))
    assert await outbox.deliver("k1") is Delivery.PENDING
    assert not combiner.subjects and "k1" in store.entries
    assert link is not None
    outbox.links.set(InMemoryLink(combiner, ME))
    assert await outbox.flush() == {**dict.fromkeys(Delivery, 0), Delivery.DELIVERED: 1}
    assert len(combiner.updates) == 1


async def test_a_validation_goes_through_the_outbox_too(tmp_path: Path) -> None:
    combiner, outbox = world(InMemoryOutboxStore(tmp_path / "box"))
    combiner.fail_next["send_validation"] = 1
    await outbox.add(entry(kind=ResultKind.VALIDATION, payload=ValidationOutcome({"accuracy": 0.5})))
    assert await outbox.deliver("k1") is Delivery.DELIVERED
    [validation] = combiner.validations
    assert validation.metrics == {"accuracy": 0.5} and combiner.tries("send_validation") == 2


# ------------------------------------------------------------- round rules --


def test_stale_reason_names_the_rule() -> None:
    watch = RoundWatch()
    now = time.time()
    assert stale_reason(entry(), now, watch) is None
    assert "closed" in (stale_reason(entry(expires_in=-5), now, watch) or "")
    watch.saw(Task(TaskKind.TRAIN, "g2", "s1", "c9", round_id="4"), now)
    assert stale_reason(entry(), now, watch) == "round 3 was superseded by round 4"
    assert stale_reason(entry(kind=ResultKind.VALIDATION), now, watch) is None
    assert stale_reason(entry(session_id="other"), now, watch) is None


async def test_a_superseded_update_is_dropped_not_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    combiner, outbox = world(InMemoryOutboxStore(tmp_path / "box"))
    combiner.fail_next["send_update"] = 1_000
    await outbox.add(entry(), model_file(tmp_path))
    outbox.watch.saw(Task(TaskKind.TRAIN, "g2", "s1", "c9", round_id="4"), time.time())
    assert await outbox.deliver("k1") is Delivery.DROPPED
    assert not combiner.updates
    assert "superseded by round 4" in caplog.text


async def test_after_a_reconnect_a_lost_global_model_means_the_round_is_over(tmp_path: Path) -> None:
    combiner, outbox = world(InMemoryOutboxStore(tmp_path / "box"))
    await outbox.add(entry(), model_file(tmp_path))
    outbox.links.take()
    del combiner.models["global-1"]  # aggregated (FEDn deletes it) or the combiner restarted
    outbox.links.set(InMemoryLink(combiner, ME))
    assert await outbox.deliver("k1") is Delivery.DROPPED
    assert "no longer holds global model" in outbox.history[-1].reason
    assert not combiner.updates and not combiner.tries("upload")


async def test_after_a_reconnect_a_lost_upload_is_uploaded_again(tmp_path: Path) -> None:
    combiner, outbox = world(InMemoryOutboxStore(tmp_path / "box"))
    combiner.fail_next["send_update"] = 1
    await outbox.add(entry(), model_file(tmp_path))
    outbox.links.take()  # the connection drops after the upload was acknowledged
    combiner.models = {"global-1": b"g"}  # and the combiner comes back without our upload
    outbox.links.set(InMemoryLink(combiner, ME))
    assert await outbox.deliver("k1") is Delivery.DELIVERED
    assert combiner.tries("upload") == 1 and len(combiner.updates) == 1


# -------------------------------------------------------------- crash points --


class Steps:
    """Counts the outbox's side effects; raises Crash before or after step ``at``."""

    def __init__(self, at: int, after: bool) -> None:
        self.at, self.after, self.n = at, after, 0

    def step(self, do: Any) -> Any:
        self.n += 1
        if self.n == self.at and not self.after:
            raise Crash
        result = do()
        if self.n == self.at and self.after:
            raise Crash
        return result


class CrashingStore(FileOutboxStore):
    def __init__(self, directory: Path, steps: Steps) -> None:
        super().__init__(directory)
        self.steps = steps

    def save(self, entry: OutboxEntry, model: Path | None = None) -> None:
        self.steps.step(lambda: super(CrashingStore, self).save(entry, model))

    def remove(self, key: str) -> None:
        self.steps.step(lambda: super(CrashingStore, self).remove(key))


class CrashingLink(InMemoryLink):
    def __init__(self, combiner: InMemoryCombiner, steps: Steps) -> None:
        super().__init__(combiner, ME)
        self.steps = steps

    async def _step(self, call: Any) -> Any:
        self.steps.n += 1
        here = self.steps.n == self.steps.at
        if here and not self.steps.after:
            call.close()
            raise Crash
        result = await call
        if here and self.steps.after:
            raise Crash
        return result

    async def upload(self, model_id: str, src: Path) -> int:
        return int(await self._step(super().upload(model_id, src)))

    async def send_update(self, update: ModelUpdate) -> None:
        await self._step(super().send_update(update))


# add, upload, save(uploaded), save(sending), send_update, remove = 6 steps
@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("at", range(1, 7))
async def test_every_crash_point_ends_in_one_update_or_a_stated_outcome(
    tmp_path: Path, at: int, after: bool
) -> None:
    combiner = InMemoryCombiner(models={"global-1": b"g"})
    steps = Steps(at, after)
    links = LinkHolder(wait_limit=0.2)
    links.set(CrashingLink(combiner, steps))
    first = Outbox(
        OutboxLedger(CrashingStore(tmp_path / "box", steps)),
        links,
        FakeClock(),
        FAST,
        ids=CountingIds("first-run"),
        random=SeededRandom(),
    )
    try:
        await first.add(entry(), model_file(tmp_path))
        await first.deliver("k1")
    except Crash:
        pass
    # The process restarts: a new outbox over the same directory, a new connection.
    restarted_links = LinkHolder(wait_limit=0.2)
    restarted_links.set(InMemoryLink(combiner, ME))
    store = FileOutboxStore(tmp_path / "box")
    second = Outbox(
        OutboxLedger(store),
        restarted_links,
        FakeClock(),
        FAST,
        ids=CountingIds("second-run"),
        random=SeededRandom(),
    )
    await second.load()
    await second.flush()
    outcomes = [e.outcome for e in (*first.history, *second.history)]
    assert len(combiner.updates) <= 1, "never a duplicate"
    assert not store.load(), "nothing is left behind"
    sending_marked = at >= 4 and not (at == 4 and not after)
    if at == 1 and not after:
        assert not combiner.subjects, "crashed before the result was written: nothing was sent"
    elif sending_marked and not combiner.updates:
        assert outcomes == [Delivery.UNCERTAIN], "the call may have left: stated, not repeated"
    else:
        assert len(combiner.updates) == 1, f"outcomes {outcomes}"
        [update] = combiner.updates
        assert combiner.models[update.model_update_id] == b"trained"


def test_the_file_store_sweeps_what_a_crash_left(tmp_path: Path) -> None:
    box = tmp_path / "box"
    store = FileOutboxStore(box)
    store.save(entry("good"), model_file(tmp_path))
    (box / ".half.json.tmp").write_text("{")
    (box / "orphan.model").write_bytes(b"x")
    (box / "broken.json").write_text("not json")
    assert [e.key for e in store.load()] == ["good"]
    assert sorted(p.name for p in box.iterdir()) == ["good.json", "good.model"]
    assert json.loads((box / "good.json").read_text())["kind"] == "update"
    store.remove("good")
    assert not list(box.iterdir())
    with pytest.raises(ValueError):
        store.model_file("../escape")


async def test_a_send_cut_short_by_cancellation_is_not_repeated(tmp_path: Path) -> None:
    combiner, outbox = world(InMemoryOutboxStore(tmp_path / "box"))
    link = outbox.links.current()
    assert isinstance(link, InMemoryLink)
    arrived = asyncio.Event()

    async def slow_send(update: ModelUpdate) -> None:
        combiner.updates.append(update)  # it arrives; the client is stopped before the reply
        arrived.set()
        await asyncio.sleep(10)

    link.send_update = slow_send  # type: ignore[method-assign]
    await outbox.add(entry(), model_file(tmp_path))
    delivering = asyncio.create_task(outbox.deliver("k1"))
    await asyncio.wait_for(arrived.wait(), 2)
    delivering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivering
    assert await outbox.flush() == {**dict.fromkeys(Delivery, 0), Delivery.UNCERTAIN: 1}
    assert len(combiner.updates) == 1
