"""Recovery and fail-fast with real processes and real adapters against the sandbox.

* a wrong server (a gRPC server without FEDn's services, the controller's HTTP port)
  ends `fedclient run` within seconds with exit code 2 and the likely cause;
* a controller that is down when the client starts is waited for, and the round completes;
* a token expiring mid-session is refreshed once and every channel continues with it;
* SIGTERM during training lets the task finish, delivers its update, and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc.aio
import pytest
from fedclient.adapters.sandbox.controller import SandboxController
from fedclient.adapters.sandbox.federation import Federation
from fedclient.app.container import build_container, client_lifecycle
from fedclient.app.settings_load import load_settings
from fedclient.domain.lifecycle import Lifecycle
from fedclient.domain.model import TaskKind

from tests.child import Child
from tests.e2e.conftest import fedclient_exe

WRONG_SERVER = "is this a FEDn 0.33 combiner? wrong host or port?"


async def run_cli(*args: str, cwd: Path, timeout: float = 60) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = await Child.start(fedclient_exe(), *args, cwd=cwd)
    code = await proc.wait(timeout)  # killed, and the test failed with its tail, on a timeout
    return code, proc.stderr, time.monotonic() - started


@pytest.mark.parametrize("server", ["grpc-without-fedn", "controller-http-port"])
async def test_a_wrong_server_fails_fast_naming_the_likely_cause(
    tmp_path: Path, digits: Path, server: str
) -> None:
    grpc_server: grpc.aio.Server | None = None
    controller: SandboxController | None = None
    if server == "grpc-without-fedn":
        grpc_server = grpc.aio.server()  # no services at all: every method is UNIMPLEMENTED
        port = grpc_server.add_insecure_port("127.0.0.1:0")
        await grpc_server.start()
    else:
        controller = SandboxController("127.0.0.1", 1)
        port = controller.start()
    try:
        code, stderr, seconds = await run_cli(
            "run",
            "--combiner",
            "127.0.0.1",
            "--combiner-port",
            str(port),
            "--local-package",
            str(digits),
            "--work-dir",
            str(tmp_path / "client"),
            cwd=tmp_path,
        )
    finally:
        if grpc_server is not None:
            await grpc_server.stop(0)
        if controller is not None:
            controller.stop()
    assert code == 2, stderr[-2000:]
    assert seconds < 20, f"took {seconds:.1f} s"
    [line] = [ln for ln in stderr.splitlines() if ln.startswith("fedclient: error:")]
    assert WRONG_SERVER in line
    assert "Traceback" not in stderr
    assert stderr.count("reconnecting to") == 0, "a permanent error is never retried"


@contextlib.asynccontextmanager
async def client(api_url: str, work: Path, **settings: object) -> AsyncIterator[Lifecycle]:
    loaded = load_settings({"api_url": api_url, "name": "rel", "work_dir": work, **settings})
    stop = asyncio.Event()
    async with client_lifecycle(build_container(loaded)) as life:
        runner = asyncio.create_task(life.run(stop))
        try:
            yield life
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner, 20)
    assert runner.done() and runner.exception() is None, runner.exception() if runner.done() else "hung"


async def test_a_controller_down_at_start_is_waited_for(tmp_path: Path, digits: Path) -> None:
    fed = Federation(digits, tmp_path / "server", expected_clients=1, round_timeout=60)
    await fed.start()
    try:
        assert fed.controller is not None and fed.controller.port is not None
        port, api_url = fed.controller.port, fed.api_url
        fed.controller.stop()  # down before the client starts
        async with client(api_url, tmp_path / "client") as life:
            await asyncio.sleep(3)
            assert life.combiner is None, "not assigned while the controller is down"
            fed.controller.start("127.0.0.1", port)
            await fed.wait_for_clients(timeout=90)
            [result] = await fed.run(1)
        assert result.updates == 1
        assert fed.combiner is not None and len(fed.combiner.updates) == 1
    finally:
        await fed.stop()


async def test_a_token_expiring_mid_session_is_refreshed_without_a_reconnect_storm(
    tmp_path: Path, digits: Path
) -> None:
    fed = Federation(digits, tmp_path / "server", expected_clients=1, round_timeout=60, token_ttl=3600)
    await fed.start()
    try:
        tokens, combiner = fed.tokens, fed.combiner
        assert tokens is not None and combiner is not None
        extra = {
            "token": fed.token,
            "refresh_token": tokens.refresh_token,
            "refresh_token_uri": fed.refresh_uri,
        }
        async with client(fed.api_url, tmp_path / "client", **extra) as life:
            await fed.wait_for_clients(timeout=60)
            [first] = await fed.run(1)
            tokens.expire_all()  # the token expires mid-session
            await _until(lambda: tokens.refreshes >= 1, 20)
            second = await fed.run_round(2, first.model_id)
            assert life.credentials.token == tokens.minted[-1]
        assert (first.updates, second.updates) == (1, 1)
        assert tokens.refreshes == 1, "one refresh for one expiry"
        assert life.connects == 1, "the open task stream kept going: no reconnect"
        assert combiner.calls.count("TaskStream") == 1
        assert len(tokens.refused) <= 3, tokens.refused  # the calls in flight when it expired
        assert len(combiner.updates) == 2
    finally:
        await fed.stop()


async def _until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


SLOW_TRAIN = """
import sys, time
time.sleep(float(__import__("os").environ.get("SLOW_TRAIN_SECONDS", "4")))
import train
train.train(sys.argv[1], sys.argv[2])
"""


def slow_package(digits: Path, dest: Path) -> Path:
    shutil.copytree(digits, dest, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    (dest / "slow_train.py").write_text(SLOW_TRAIN)
    manifest = (dest / "fedn.yaml").read_text().replace("python train.py", "python slow_train.py")
    (dest / "fedn.yaml").write_text(manifest)
    return dest


async def test_sigterm_during_training_finishes_the_task_then_exits_0(tmp_path: Path, digits: Path) -> None:
    package = slow_package(digits, tmp_path / "slow")
    fed = Federation(package, tmp_path / "server", expected_clients=1, round_timeout=60)
    await fed.start()
    proc = await Child.start(
        fedclient_exe(),
        "run",
        "--api-url",
        fed.api_url,
        "--client-id",
        "graceful",
        "--work-dir",
        str(tmp_path / "client"),
        cwd=tmp_path,
        env={**os.environ, "SLOW_TRAIN_SECONDS": "4"},
    )
    try:
        combiner = fed.combiner
        assert combiner is not None
        await fed.wait_for_clients(timeout=60)
        config = json.dumps({"round_id": "1", "session_id": fed.session_id})
        ask = combiner.submit_task("graceful", TaskKind.TRAIN, fed.seed_model_id, fed.session_id, config)
        await _until(lambda: any("Starting processing" in s.text for s in combiner.statuses), 30)
        proc.proc.send_signal(signal.SIGTERM)  # mid-training
        stopped_at = time.monotonic()
        updates = await combiner.wait_for_updates([ask], 30)
        code = await proc.wait(60)
        took = time.monotonic() - stopped_at
    finally:
        await proc.kill()  # only if it still runs
        await fed.stop()
    stderr = proc.stderr
    assert code == 0, proc.tail()
    assert len(updates) == 1 and len(combiner.updates) == 1, "the running task's update was delivered once"
    assert "waiting for the running train task" in stderr
    assert "Traceback" not in stderr
    assert took < 30, f"shutdown took {took:.1f} s"
