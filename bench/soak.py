"""Soak: hundreds of rounds against the sandbox combiner with random faults injected through a proxy.

    python bench/soak.py [--rounds 300] [--fault-rate 0.3] [--seed 1] [--quick]

One real client (gRPC adapter, lifecycle, durable outbox) serves training rounds
while the proxy cuts, resets, blackholes or slows its connection, or the combiner
is crashed and restarted, at a random moment of a random round. Printed: rounds
completed, updates lost and doubled (the combiner records every attempt), the
recovery time per fault kind, and the client's RSS, open file descriptors and
asyncio tasks at the start and the end - all of which must stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from fedclient.domain.outbox import Delivery
from fedclient.testing.fault_rig import FaultRig

FAULTS = ("cut", "reset", "cut-mid-download", "reset-mid-upload", "blackhole", "slow", "restart", "kick")


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def vitals() -> tuple[int, int, int]:
    return rss_kib(), open_fds(), len(asyncio.all_tasks())


async def inject(rig: FaultRig, fault: str, rng: random.Random) -> None:
    await asyncio.sleep(rng.uniform(0.0, 0.15))  # somewhere in the round
    proxy = rig.proxy
    if fault == "cut":
        proxy.cut()
    elif fault == "reset":
        proxy.reset()
    elif fault == "cut-mid-download":
        proxy.cut_after(rng.randrange(1, rig.model_bytes), "down")
    elif fault == "reset-mid-upload":
        proxy.cut_after(rng.randrange(1, rig.model_bytes), "up", hard=True)
    elif fault == "blackhole":
        proxy.blackhole()
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        proxy.restore()
    elif fault == "slow":
        proxy.slow(0.01)
        await asyncio.sleep(1.0)
        proxy.restore()
    elif fault == "restart":
        await rig.restart_combiner(down=rng.uniform(0.1, 1.0))
    elif fault == "kick":
        await rig.combiner.kick_clients()


def explain(rig: FaultRig, corr: str, trained_before: int) -> str:
    """Why round ``corr`` has no update: the client's own records say."""
    assert rig.life is not None and rig.life.outbox is not None
    if rig.life.inbox is not None:
        for task, reason in rig.life.inbox.dropped:
            if task.correlation_id == corr:
                return f"task dropped by the client ({reason})"
    for event in reversed(rig.life.outbox.history):
        if event.correlation_id == corr:
            if event.outcome is Delivery.DELIVERED:
                return "LOST: acknowledged but not recorded"
            return f"update {event.outcome.value} ({event.reason.split(';')[0][:60]})"
    if rig.trainer.calls.count("train") == trained_before:
        return "task never reached the client (handed to a stream that died, as FEDn does)"
    return "LOST: trained, no outbox outcome"


def prune(rig: FaultRig, keep: str) -> None:
    """Forget the sandbox's records and models of checked rounds: the figures are the client's growth."""
    combiner = rig.combiner
    for upload in combiner.uploads:
        if upload.model_id and upload.model_id != keep:
            combiner.model_path(upload.model_id).unlink(missing_ok=True)
    for records in (combiner.updates, combiner.attempts, combiner.uploads, combiner.statuses):
        records.clear()
    combiner.validations.clear()
    combiner.metadata_seen.clear()
    combiner._sent.clear()


async def soak(rounds: int, fault_rate: float, seed: int, work: Path) -> int:
    rng = random.Random(seed)
    rig = await FaultRig(work, model_bytes=(3 << 20) // 2, round_timeout=30.0).start()
    lost = doubled = 0
    missing: dict[str, int] = defaultdict(int)  # why a round got no update
    recovery: dict[str, list[float]] = defaultdict(list)
    try:
        await rig.wait_online()
        model = rig.seed_id
        # Warm up, one round per fault kind, so that the first figures are taken in steady state
        # (gRPC and the allocator grow their pools on the first reconnects, once).
        for fault in ("", *FAULTS, ""):
            corr = rig.submit_round(model)
            injector = asyncio.create_task(inject(rig, fault, rng)) if fault else None
            records = await rig.wait_update(corr, timeout=40.0)
            if injector is not None:
                await injector
                rig.proxy.restore()
            await rig.wait_online(30.0)
            model = records[0].model_update_id if records else model
            prune(rig, model)
        start = vitals()
        t_start = time.monotonic()
        for number in range(1, rounds + 1):
            fault = rng.choice(FAULTS) if rng.random() < fault_rate else ""
            corr = rig.submit_round(model)
            trained = rig.trainer.calls.count("train")
            started = time.monotonic()
            injector = asyncio.create_task(inject(rig, fault, rng)) if fault else None
            records = await rig.wait_update(corr, timeout=40.0)
            if injector is not None:
                await injector
                rig.proxy.restore()
            records = await rig.settle(corr, 0.05 if not fault else 0.3)
            if not records:
                why = explain(rig, corr, trained)
                missing[why] += 1
                lost += why.startswith("LOST")
                print(f"round {number}: no update ({fault or 'no fault'}): {why}", file=sys.stderr)
                await rig.wait_online(30.0)
                continue
            if len(records) > 1:
                doubled += 1
            if fault:
                recovery[fault].append(time.monotonic() - started)
            model = records[0].model_update_id
            prune(rig, model)
            if number % 50 == 0:
                rss, fds, tasks = vitals()
                elapsed = time.monotonic() - t_start
                print(
                    f"  ... {number} rounds, {elapsed:.0f} s, RSS {rss / 1024:.1f} MiB, {fds} fds, {tasks} tasks",  # noqa: E501
                    file=sys.stderr,
                )
        await asyncio.sleep(1.0)  # let helper tasks of the last round finish
        end = vitals()
        assert rig.life is not None and rig.life.outbox is not None
        counts = rig.life.outbox.counts
        completed = rounds - sum(missing.values())
        print(f"rounds completed      {completed} / {rounds} in {time.monotonic() - t_start:.0f} s")
        for why, count in sorted(missing.items()):
            print(f"  no update: {count:3d} x {why}")
        print(
            f"updates lost          {lost}   (finished updates neither recorded nor accounted for; "
            f"outbox: {counts[Delivery.UNCERTAIN]} unconfirmed by design, "
            f"{counts[Delivery.DROPPED]} dropped by the round rules)"
        )
        print(f"updates doubled       {doubled}")
        injected = sum(map(len, recovery.values()))
        print(f"faults injected       {injected} ({len(recovery['restart'])} combiner restarts)")
        print(f"client RSS            {start[0] / 1024:.1f} MiB -> {end[0] / 1024:.1f} MiB")
        print(f"open file descriptors {start[1]} -> {end[1]}")
        print(f"asyncio tasks         {start[2]} -> {end[2]}")
        print("recovery (fault -> update recorded), seconds:")
        for fault in FAULTS:
            times = recovery.get(fault)
            if times:
                median, worst = statistics.median(times), max(times)
                print(f"  {fault:18s} n={len(times):3d} median {median:5.2f}  max {worst:5.2f}")
        flat = end[1] <= start[1] + 2 and end[2] <= start[2] + 1 and end[0] <= start[0] * 1.25 + 8 * 1024
        print(f"flat                  {'yes' if flat else 'NO'}")
        return 0 if flat and not doubled and not lost else 1
    finally:
        await rig.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quick", action="store_true", help="300 rounds (the make bench mode, a few minutes)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the client's recovery warnings would flood the figures
    rounds = 300 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="fedclient-soak-") as tmp:
        return asyncio.run(soak(rounds, args.fault_rate, args.seed, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
