"""Fault injection: a real client against the sandbox combiner, through a proxy that breaks things.

Every scenario asserts that the client recovers (it is online again and serves
the next round) AND that the combiner recorded the broken round's update exactly
once; the sandbox records every attempt, so a duplicate would show. The time
from the fault to the delivered update is printed (``-s``) for docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.testing.fault_rig import FaultRig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[FaultRig]:
    rig = await FaultRig(tmp_path).start()
    try:
        await rig.wait_online()
        yield rig
    finally:
        await rig.stop()
    assert rig.client_error() is None


async def delivered_once(rig: FaultRig, corr: str, fault_at: float, name: str) -> None:
    [update] = await rig.wait_update(corr)
    recovery = time.monotonic() - fault_at
    assert len(await rig.settle(corr)) == 1, "exactly once"
    assert update.meta["training_metadata"] == {"num_examples": 1}
    assert update.model_update_id in {u.model_id for u in rig.combiner.uploads if u.completed}
    print(f"\nRECOVERY {name}: {recovery:.2f} s")
    # and the client goes on: the next round is served normally
    await rig.wait_online()
    following = rig.submit_round(update.model_update_id)
    assert len(await rig.wait_update(following)) == 1


async def on_hook(rig: FaultRig, point: str) -> asyncio.Event:
    """Fire once at ``point``: returns an event set when the hook fired."""
    fired = asyncio.Event()

    async def hook(subject: str) -> None:
        if not fired.is_set():
            fired.set()
            rig.combiner.hooks.pop(point, None)
            await asyncio.sleep(0.05)

    rig.combiner.hooks[point] = hook
    return fired


async def test_proxy_cut_mid_download(rig: FaultRig) -> None:
    rig.proxy.cut_after(1 << 20, "down")
    t0 = time.monotonic()
    corr = rig.submit_round()
    await delivered_once(rig, corr, t0, "proxy cut mid-download")
    assert rig.combiner.attempts.count(("Download", rig.seed_id)) >= 2


async def test_proxy_reset_mid_upload(rig: FaultRig) -> None:
    rig.trainer.delay = 0.3
    corr = rig.submit_round()
    await asyncio.wait_for(rig.trainer.training.wait(), 10)
    rig.proxy.cut_after(1 << 20, "up", hard=True)
    t0 = time.monotonic()
    await delivered_once(rig, corr, t0, "proxy RST mid-upload")
    broken = [u for u in rig.combiner.uploads if not u.completed]
    assert broken, "the first upload really was cut"
    assert len({u.model_id for u in rig.combiner.uploads}) == len(rig.combiner.uploads), "fresh id per try"


async def test_proxy_blackhole_mid_upload_then_restored(rig: FaultRig) -> None:
    fired = await on_hook(rig, "upload")
    corr = rig.submit_round()
    await asyncio.wait_for(fired.wait(), 10)
    rig.proxy.blackhole()
    t0 = time.monotonic()
    await asyncio.sleep(3 * rig.timeout)  # longer than the client's progress timeout
    rig.proxy.restore()
    await delivered_once(rig, corr, t0, "blackhole mid-upload (6 s)")


async def test_proxy_slow_link(rig: FaultRig) -> None:
    rig.proxy.slow(0.02)
    t0 = time.monotonic()
    corr = rig.submit_round()
    await delivered_once(rig, corr, t0, "slow link (20 ms per chunk)")


@pytest.mark.parametrize("during", ["download", "upload", "training"])
async def test_combiner_restart_mid_task(rig: FaultRig, during: str) -> None:
    if during == "training":
        rig.trainer.delay = 1.5
        corr = rig.submit_round()
        await asyncio.wait_for(rig.trainer.training.wait(), 10)
    else:  # the combiner's own hook: the transfer has begun
        fired = await on_hook(rig, during)
        corr = rig.submit_round()
        await asyncio.wait_for(fired.wait(), 10)
    t0 = time.monotonic()
    await rig.restart_combiner()
    await delivered_once(rig, corr, t0, f"combiner restart mid-{during}")


async def test_combiner_restart_while_idle(rig: FaultRig) -> None:
    first = rig.submit_round()
    assert len(await rig.wait_update(first)) == 1
    t0 = time.monotonic()
    await rig.restart_combiner(down=1.0)
    await rig.wait_online()
    corr = rig.submit_round()
    await delivered_once(rig, corr, t0, "combiner restart while idle")


async def test_combiner_down_between_upload_and_send(rig: FaultRig) -> None:
    """The upload was acknowledged, then the combiner died before SendModelUpdate left: it is sent
    after the restart, provably for the first time - and the acknowledged upload is not repeated."""
    rig.store.hold.set()
    corr = rig.submit_round()
    assert await asyncio.to_thread(rig.store.reached.wait, 20)
    t0 = time.monotonic()
    await rig.crash_combiner()
    rig.store.release.set()
    await asyncio.sleep(1.0)
    assert not rig.combiner.updates_for(corr)
    await rig.combiner.start("127.0.0.1", rig.combiner.address[1])
    await delivered_once(rig, corr, t0, "combiner down between upload and SendModelUpdate")
    assert sum(1 for u in rig.combiner.uploads if u.completed) == 2, "one upload per round: no re-upload"


async def test_combiner_dies_before_the_update_reply(rig: FaultRig, caplog: pytest.LogCaptureFixture) -> None:
    """SendModelUpdate arrived, the reply did not: ambiguous, so it is not sent again (no duplicate)."""
    fired = asyncio.Event()
    crashes: list[asyncio.Future[None]] = []

    async def die_before_reply(update_id: str) -> None:
        rig.combiner.hooks.pop("update")
        fired.set()
        crashes.append(asyncio.ensure_future(rig.crash_combiner()))
        await asyncio.sleep(5)

    rig.combiner.hooks["update"] = die_before_reply
    corr = rig.submit_round()
    await asyncio.wait_for(fired.wait(), 10)
    t0 = time.monotonic()
    await asyncio.sleep(0.5)
    await rig.combiner.start("127.0.0.1", rig.combiner.address[1])
    await delivered_once(rig, corr, t0, "combiner dies before the SendModelUpdate reply")
    assert "left unconfirmed" in caplog.text
    assert (
        rig.combiner.attempts.count(("SendModelUpdate", rig.combiner.updates_for(corr)[0].model_update_id))
        == 1
    )


async def test_stream_closed_by_the_server_mid_training(rig: FaultRig) -> None:
    rig.trainer.delay = 1.0
    corr = rig.submit_round()
    await asyncio.wait_for(rig.trainer.training.wait(), 10)
    t0 = time.monotonic()
    await rig.combiner.kick_clients()
    await delivered_once(rig, corr, t0, "task stream closed by the server mid-training")


async def test_a_redelivered_task_is_not_trained_twice(rig: FaultRig) -> None:
    corr = rig.submit_round()
    t0 = time.monotonic()
    await delivered_once(rig, corr, t0, "baseline round")
    # the combiner sends the very same request again (a redelivery after a reconnect)
    again = rig.combiner.resubmit(corr)
    await asyncio.sleep(1.0)
    assert again == corr and len(rig.combiner.updates_for(corr)) == 1
    assert rig.trainer.calls.count("train") == 2, "the redelivered request was not run"


async def test_an_update_superseded_while_undeliverable_is_dropped(
    rig: FaultRig, caplog: pytest.LogCaptureFixture
) -> None:
    """Round 1's update cannot be sent (combiner down); round 2 starts meanwhile: round 1's update
    is dropped, never averaged into round 2, and round 2's update is delivered once."""
    rig.store.hold.set()
    first = rig.submit_round()
    assert await asyncio.to_thread(rig.store.reached.wait, 20)
    t0 = time.monotonic()
    await rig.crash_combiner()
    rig.store.release.set()
    await asyncio.sleep(0.5)
    second = rig.submit_round()  # queued for the client's next subscription
    await rig.combiner.start("127.0.0.1", rig.combiner.address[1])
    await delivered_once(rig, second, t0, "round superseded while its update waited")
    assert not rig.combiner.updates_for(first), "never delivered into a round it does not belong to"
    assert "superseded by round 2" in caplog.text


async def test_an_update_past_its_round_deadline_is_dropped(
    rig: FaultRig, caplog: pytest.LogCaptureFixture
) -> None:
    """Training outlives the round's timeout: FEDn would average the late update into the next round,
    so it is dropped instead; the client serves the next round normally."""
    rig.round_timeout, rig.trainer.delay = 1.0, 1.5
    late = rig.submit_round()
    await asyncio.wait_for(rig.trainer.training.wait(), 10)
    rig.round_timeout, rig.trainer.delay = 60.0, 0.0
    await asyncio.sleep(2.5)
    assert not rig.combiner.updates_for(late)
    assert not [u for u in rig.combiner.uploads if u.completed], "not even uploaded"
    assert "is closed (its deadline passed" in caplog.text
    t0 = time.monotonic()
    await delivered_once(rig, rig.submit_round(), t0, "next round after a dropped late update")
