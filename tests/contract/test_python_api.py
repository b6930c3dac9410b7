"""The Python API (fedclient.network.clients) against the sandbox controller and combiner.

The facade is synchronous; the sandbox runs in this test's event loop, so every
facade call goes through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fedclient import (
    Client,
    ClientState,
    ClientStateToString,
    ConnectorClient,
    InProcessClient,
    PackageRuntime,
    Status,
    log_attributes,
    log_metric,
)
from fedclient.adapters.sandbox.federation import Federation
from fedclient.app.workdir import extract_dir_lock
from fedclient.domain.errors import ConfigError
from fedclient.domain.lifecycle import Lifecycle

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "api-test-token"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = Federation(
        ROOT / "examples" / "digits", tmp_path / "server", expected_clients=1, token=TOKEN, round_timeout=60
    )
    await federation.start()
    try:
        yield federation
    finally:
        await federation.stop()


def _port(fed: Federation) -> int:
    assert fed.controller is not None and fed.controller.port is not None
    return fed.controller.port


async def test_client_assigns_connects_downloads_and_uploads(fed: Federation, tmp_path: Path) -> None:
    assert fed.combiner is not None
    config = {  # 0.9-era names, plus one that means nothing
        "discover_host": "127.0.0.1",
        "discover_port": _port(fed),
        "token": TOKEN,
        "name": "api-client",
        "client_id": "api-1",
        "remote_compute_context": True,
        "work_dir": str(tmp_path / "work"),
        "no_such_key": 1,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = Client(config)
    assert [str(w.message) for w in caught] == [
        "client config key 'no_such_key' is not a fedclient setting; ignored"
    ]
    try:
        combiner = await asyncio.to_thread(client.assign)
        assert (combiner["host"], combiner["port"]) == fed.combiner.address
        assert await asyncio.to_thread(client.connect, combiner) is True
        seed = fed.combiner.model_path(fed.seed_model_id).read_bytes()
        model = await asyncio.to_thread(client.get_model_from_combiner, fed.seed_model_id)
        assert isinstance(model, io.BytesIO) and model.getvalue() == seed
        target = tmp_path / "seed.npz"
        assert (
            await asyncio.to_thread(client.get_model_from_combiner, fed.seed_model_id, 20, target) == target
        )
        assert target.read_bytes() == seed
        assert await asyncio.to_thread(client.get_model_from_combiner, "no-such-model", 1) is None
        for sent in (io.BytesIO(seed + b"x"), target):
            new_id = str(uuid.uuid4())
            assert await asyncio.to_thread(client.send_model_to_combiner, sent, new_id) is sent
            expected = sent.getvalue() if isinstance(sent, io.BytesIO) else seed
            assert fed.combiner.model_path(new_id).read_bytes() == expected
        assert fed.controller is not None and fed.controller.clients["api-1"]["name"] == "api-client"
    finally:
        await asyncio.to_thread(client.close)


async def test_client_run_holds_the_extract_dir_lock_while_it_serves(
    fed: Federation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "site" / "package"
    client = Client(
        {
            "discover_host": "127.0.0.1",
            "discover_port": _port(fed),
            "token": TOKEN,
            "name": "runner",
            "client_id": "run-1",
            "work_dir": str(tmp_path / "work"),
            "package_extract_dir": str(target),
        }
    )
    # run() serves until Ctrl-C; the test takes the lifecycle's stop event instead.
    real_run, serving = Lifecycle.run, {}

    async def run(self: Lifecycle, stop: asyncio.Event | None = None) -> None:
        serving["loop"], serving["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await real_run(self, serving["stop"])

    monkeypatch.setattr(Lifecycle, "run", run)
    runner = asyncio.create_task(asyncio.to_thread(client.run))
    try:
        await fed.wait_for_clients(timeout=30)
        assert (target / "fedn.yaml").is_file()  # unpacked over the extract dir
        refused = pytest.raises(ConfigError, match=rf"another fedclient \(pid {os.getpid()}\) is already")
        with refused, extract_dir_lock(target):
            pass
    finally:
        if "loop" in serving:
            serving["loop"].call_soon_threadsafe(serving["stop"].set)
        await asyncio.wait_for(runner, 30)
        await asyncio.to_thread(client.close)
    with extract_dir_lock(target):  # released when run() returns
        pass


async def test_connector_client_answers_with_fedn_statuses(fed: Federation) -> None:
    def assign(token: str) -> tuple[Status, Any]:
        connector = ConnectorClient("127.0.0.1", _port(fed), token, "conn", True, id="conn-1")
        try:
            return connector.assign()
        finally:
            connector.close()

    status, config = await asyncio.to_thread(assign, TOKEN)
    assert status is Status.Assigned and config["port"] == fed.combiner.address[1]  # type: ignore[union-attr]
    status, message = await asyncio.to_thread(assign, "wrong")
    assert status is Status.UnAuthorized and isinstance(message, str) and message
    assert [s.value for s in Status] == [0, 1, 2, 3, 4]


async def test_package_runtime_downloads_verifies_unpacks_and_dispatches(
    fed: Federation, tmp_path: Path
) -> None:
    assert fed.controller is not None and fed.combiner is not None
    runtime = PackageRuntime(tmp_path / "pkg")
    assert await asyncio.to_thread(runtime.download, "127.0.0.1", _port(fed), TOKEN) is True
    assert runtime.validate(fed.controller.package_sha256) is True
    assert runtime.validate("0" * 64) is False
    assert runtime.unpack() is True and runtime.run_path is not None
    assert (runtime.run_path / "fedn.yaml").is_file()
    dispatcher = runtime.dispatcher(runtime.run_path)
    seed = fed.combiner.model_path(fed.seed_model_id)
    metadata = await asyncio.to_thread(dispatcher.run_cmd, f"train {seed} {tmp_path / 'out.npz'}")
    assert metadata is not None and metadata["num_examples"] > 0
    assert hashlib.sha256((tmp_path / "out.npz").read_bytes()).hexdigest() != runtime.checksum
    assert await asyncio.to_thread(runtime.download, "127.0.0.1", _port(fed), "wrong") is None


def test_client_state_names() -> None:
    assert (ClientState.idle, ClientState.training, ClientState.validating) == (1, 2, 3)
    assert ClientStateToString(ClientState.training) == "TRAINING"


async def test_in_process_client_completes_rounds_and_its_metrics_reach_the_combiner(
    fed: Federation, tmp_path: Path
) -> None:
    assert fed.combiner is not None

    busy: list[tuple[float, float]] = []

    def train(weights: list[Any], settings: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        start = time.monotonic()
        x = np.random.default_rng(0).standard_normal((200, 200))
        while time.monotonic() - start < 1.0:  # CPU-bound, on the callback thread
            x = np.tanh(x @ x.T / 200)
        busy.append((start, time.monotonic()))
        for step in range(3):
            log_metric({"loss": 1.0 / (step + 1)})
        log_attributes({"framework": "numpy", "version": np.__version__})
        return [w + 1.0 for w in weights], {"num_examples": 10}

    def validate(weights: list[Any]) -> dict[str, Any]:
        return {"norm": float(sum(np.abs(w).sum() for w in weights))}

    client = InProcessClient(
        {
            "api_url": fed.api_url,
            "token": TOKEN,
            "name": "inproc",
            "client_id": "inproc-1",
            "work_dir": str(tmp_path / "work"),
            "heartbeat_interval": 0.2,
        },
        train=train,
        validate=validate,
        models="numpy",
    )
    serving = asyncio.create_task(client.run_async())
    try:
        await fed.wait_for_clients(timeout=30)
        results = await fed.run(2)
    finally:
        client.stop()
        await asyncio.wait_for(serving, 30)
    assert [r.updates for r in results] == [1, 1] and [r.validations for r in results] == [1, 1]
    assert results[1].metrics["norm"] > results[0].metrics["norm"] > 0
    metrics = fed.combiner.metrics
    assert [m.step for m in metrics] == [0, 1, 2, 0, 1, 2]
    assert {m.round_id for m in metrics} == {"1", "2"}
    assert {m.session_id for m in metrics} == {fed.session_id}
    assert metrics[0].model_id == fed.seed_model_id and metrics[3].model_id == results[0].model_id
    assert metrics[0].metrics == {"loss": 1.0} and metrics[0].sender_client_id == "inproc-1"
    assert fed.combiner.attributes[0].attributes["framework"] == "numpy"
    assert fed.controller is not None and fed.controller.clients["inproc-1"]["package"] == "local"
    # Heartbeats (every 0.2 s) kept arriving while each training callback kept a core busy.
    beats = [t for cid, t in fed.combiner.heartbeat_log if cid == "inproc-1"]
    for start, end in busy:
        assert sum(start <= t <= end for t in beats) >= 2, (start, end, beats)
