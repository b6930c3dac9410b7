"""The site policy, enforced on real child processes while the client keeps serving.

A memory hog, a CPU spinner and an output flood each fail their task with a message
naming the limit; the next task (a well-behaved one) still succeeds. An unlisted
package is refused before anything is unpacked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from fedclient.adapters.clock import PythonRandom, UuidIds
from fedclient.adapters.combiner_grpc.vocabulary import task_of
from fedclient.adapters.outbox_store import ProcessOutboxStore
from fedclient.adapters.package_cache import DiskPackageCache
from fedclient.adapters.scratch import TempScratch
from fedclient.adapters.trainers import subprocess_trainer_factory
from fedclient.app.client_graph import client_graph_lifecycle
from fedclient.domain.credentials import Credentials
from fedclient.domain.errors import PackageError
from fedclient.domain.lifecycle import ClientPlan, Lifecycle
from fedclient.domain.model import (
    Assignment,
    AssignmentStatus,
    CombinerAddress,
    Identity,
    Stage,
    Task,
    TaskKind,
)
from fedclient.domain.policy import ResourceLimits
from fedclient.testing.fakes import (
    FakeClock,
    InMemoryCombiner,
    InMemoryConnector,
    InMemoryDiscovery,
    InMemoryPackageSource,
    InMemoryUnpacker,
)

ASSIGNED = Assignment(
    AssignmentStatus.ASSIGNED, combiner=CombinerAddress("127.0.0.1", 12080), client_id="cid"
)
TRAIN = """\
import errno, json, sys
mode = open(sys.argv[1]).read()
if mode == "write":  # into its own package directory (its cwd); the model says how it went
    try:
        open("new.txt", "w").write("x")
        result = "written"
    except OSError as exc:
        result = errno.errorcode[exc.errno]
    open(sys.argv[2], "w").write(result)
    json.dump({"num_examples": 3}, open(sys.argv[2] + "-metadata", "w"))
    sys.exit(0)
if mode == "hog":
    hog = bytearray(3 * 1024**3)
elif mode == "spin":
    while True:
        pass
elif mode == "flood":
    while True:
        print("x" * 1000, flush=True)
open(sys.argv[2], "wb").write(b"trained")
json.dump({"num_examples": 3}, open(sys.argv[2] + "-metadata", "w"))
"""
MANIFEST = {"entry_points": {"train": {"command": "python train.py"}}}
LIMITS = ResourceLimits(memory_bytes=1024**3, cpu_seconds=1, wall_seconds=60, output_bytes=200_000)


def _package(tmp_path: Path) -> Path:
    archive = tmp_path / "package.json"  # the in-memory unpacker's format: {path: text}
    archive.write_text(json.dumps({"client/fedn.yaml": json.dumps(MANIFEST), "client/train.py": TRAIN}))
    return archive


def _life(
    tmp_path: Path, combiner: InMemoryCombiner, read_only: bool = False, **plan: object
) -> tuple[Lifecycle, InMemoryUnpacker]:
    archive = _package(tmp_path)
    unpacker = InMemoryUnpacker()
    life = client_graph_lifecycle(  # the container's graph of one client, over these ports
        credentials=Credentials(None),
        plan=ClientPlan(identity=Identity("site-a", "cid"), work_dir=tmp_path / "work", **plan),  # type: ignore[arg-type]
        discovery=InMemoryDiscovery(ASSIGNED),
        package_source=InMemoryPackageSource(archive, hashlib.sha256(archive.read_bytes()).hexdigest()),
        unpacker=unpacker,
        connector=InMemoryConnector(combiner),
        trainer_factory=subprocess_trainer_factory(timeout=60, limits=LIMITS, read_only_package=read_only),
        clock=FakeClock(),
        package_cache=DiskPackageCache(),
        outbox_store=ProcessOutboxStore(tmp_path / "work" / "outbox"),
        scratch=TempScratch(),
        ids=UuidIds(),
        random=PythonRandom(),
    )
    return life, unpacker


def _task(model: str) -> Task:
    config = {"round_id": "1"}
    return task_of(TaskKind.TRAIN, model, "s1", f"corr-{model}", json.dumps(config), "combiner")


@pytest.mark.skipif(sys.platform == "win32", reason="setrlimit is POSIX")
async def test_limit_breakers_fail_their_tasks_and_the_client_serves_the_next(tmp_path: Path) -> None:
    combiner = InMemoryCombiner()
    order = ["hog", "spin", "flood", "good"]
    for mode in order:
        combiner.models[mode] = mode.encode()
        combiner.submit("cid", _task(mode))
    life, _ = _life(tmp_path, combiner)
    stop = asyncio.Event()
    runner = asyncio.create_task(life.run(stop))
    try:
        async with asyncio.timeout(120):
            while life.runner is None or len(life.runner.outcomes) < len(order):
                assert not runner.done(), runner.exception() if runner.done() else None
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)

    outcomes = {o.task.model_id: o for o in life.runner.outcomes}
    assert "memory limit of 1073741824 bytes" in outcomes["hog"].error
    assert "CPU time limit of 1 s" in outcomes["spin"].error
    assert "output limit of 200000 bytes" in outcomes["flood"].error
    assert outcomes["good"].ok and len(combiner.updates) == 1
    errors = [s.failure for s in combiner.statuses if s.stage is Stage.FAILED]
    assert len(errors) == 3 and all("limit" in text for text in errors)  # the combiner is told why
    assert _processes_mentioning(str(tmp_path)) == []  # no child left spinning or flooding


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the read-only mount needs root on Linux; for other users chmod protects (test_hostile_archives)",
)
@pytest.mark.parametrize(("read_only", "result"), [(True, b"EROFS"), (False, b"written")])
async def test_a_read_only_package_cannot_be_written_even_by_root(
    tmp_path: Path, read_only: bool, result: bytes
) -> None:
    combiner = InMemoryCombiner()
    combiner.models["write"] = b"write"
    combiner.submit("cid", _task("write"))
    life, unpacker = _life(tmp_path, combiner, read_only=read_only)
    stop = asyncio.Event()
    runner = asyncio.create_task(life.run(stop))
    try:
        async with asyncio.timeout(60):
            while life.runner is None or not life.runner.outcomes:
                assert not runner.done(), runner.exception() if runner.done() else None
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
    [outcome] = life.runner.outcomes
    assert outcome.ok, outcome.error  # the task succeeds either way: only the write is refused
    [update] = combiner.updates
    assert combiner.models[update.model_update_id] == result  # the entry point wrote its model all the same
    package = unpacker.unpacked[0] / "client"
    assert (package / "new.txt").exists() is not read_only


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


async def test_an_unlisted_package_is_refused_before_unpacking(tmp_path: Path) -> None:
    life, unpacker = _life(tmp_path, InMemoryCombiner(), allowed_packages=frozenset({"0" * 64}))
    with pytest.raises(PackageError, match="not in the site policy's allowlist"):
        await life.run(asyncio.Event())
    assert unpacker.unpacked == []  # never unpacked
    assert list((tmp_path / "work" / "download").iterdir()) == []  # and the download is gone


async def test_a_listed_package_is_unpacked(tmp_path: Path) -> None:
    archive = _package(tmp_path)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    combiner = InMemoryCombiner()
    life, unpacker = _life(tmp_path, combiner, allowed_packages=frozenset({sha}))
    manifest = (await life.package.prepare()).manifest
    assert manifest.has("train") and len(unpacker.unpacked) == 1
    assert unpacker.unpacked[0].name == sha[:16]  # one private directory per package version
