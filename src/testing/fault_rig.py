"""One real client (real gRPC adapter, real lifecycle, durable outbox) against one sandbox combiner,
through a FaultProxy, with short timeouts: the bench for fault-injection tests and the soak run.

The trainer copies the model (plus an optional pause), so a round costs only the
network work that the faults are aimed at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapters.combiner_grpc.link import GrpcConnector
from ..adapters.outbox_store import FileOutboxStore
from ..adapters.sandbox.combiner import SandboxCombiner, UpdateRecord
from ..adapters.sandbox.fault_proxy import FaultProxy
from ..app.container import Container, build_container
from ..app.setting_names import spell
from ..app.settings_load import load_settings
from ..domain.lifecycle import ClientPlan, Lifecycle
from ..domain.model import CombinerAddress, Identity, PackageMode, TaskKind
from ..domain.outbox import OutboxEntry
from ..domain.package import Manifest
from ..domain.retry import RetryConfig

MANIFEST = (
    "entry_points:\n  train:\n    command: python train.py\n  validate:\n    command: python validate.py\n"
)
QUICK = RetryConfig(initial=0.1, maximum=0.5)


class HoldingStore(FileOutboxStore):
    """The durable outbox store, able to hold the client just before a message call leaves.

    With ``hold`` set, saving the "sending" mark blocks (it runs in a worker thread)
    until ``release`` is set: a test can break the combiner at exactly that point.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.hold = threading.Event()
        self.reached = threading.Event()
        self.release = threading.Event()

    def save(self, entry: OutboxEntry, model: Path | None = None) -> None:
        super().save(entry, model)
        if entry.sending and self.hold.is_set():
            self.hold.clear()
            self.reached.set()
            self.release.wait(30)


class CopyTrainer:
    """Trains by copying the model file after ``delay`` seconds; records every call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[str] = []
        self.training = asyncio.Event()

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.calls.append("train")
        self.training.set()
        try:
            await asyncio.sleep(self.delay)
            await asyncio.to_thread(shutil.copyfile, in_model, out_model)
        finally:
            self.training.clear()
        return {"num_examples": 1}

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        self.calls.append("validate")
        return {"accuracy": 1.0}

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        self.calls.append("predict")
        return {}

    async def startup(self) -> None:
        self.calls.append("startup")


@dataclass
class FaultRig:
    work_dir: Path
    model_bytes: int = 3 << 20  # three 1 MiB chunks: room to break a transfer in the middle
    train_delay: float = 0.0
    timeout: float = 2.0  # rpc, connect and progress timeouts of the client
    round_timeout: float = 60.0
    client_id: str = "rig-client"
    session_id: str = "soak"
    combiner: SandboxCombiner = field(init=False)
    proxy: FaultProxy = field(init=False)
    trainer: CopyTrainer = field(init=False)
    life: Lifecycle | None = None
    container: Container | None = None
    store: HoldingStore = field(init=False)
    seed_id: str = ""
    rounds: int = 0
    _runner: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _port: int = 0

    async def start(self) -> FaultRig:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.combiner = SandboxCombiner(self.work_dir / "server-models")
        self._port = await self.combiner.start("127.0.0.1", 0)
        self.proxy = FaultProxy("127.0.0.1", self._port)
        await self.proxy.start()
        seed = self.work_dir / "seed.bin"
        seed.write_bytes(os.urandom(self.model_bytes))
        self.seed_id = f"seed-{uuid.uuid4().hex[:8]}"
        self.combiner.put_model(self.seed_id, seed)
        self.trainer = CopyTrainer(self.train_delay)
        await self.start_client()
        return self

    async def start_client(self) -> None:
        """Start the client over the work directory, built by the container as `fedclient run` is.

        The rig's plan (fast heartbeats and retries), its connector (short timeouts), trainer
        and holding outbox store are given to the ``lifecycle`` provider as call arguments.
        """
        package = self.work_dir / "package"
        package.mkdir(exist_ok=True)
        (package / "fedn.yaml").write_text(MANIFEST)
        plan = ClientPlan(
            identity=Identity("rig", self.client_id),
            work_dir=self.work_dir / "client",
            package_mode=PackageMode.LOCAL,
            local_package_dir=package,
            combiner=CombinerAddress("127.0.0.1", self.proxy.port),
            heartbeat_interval=0.5,
            reconnect_retry=QUICK,
            delivery_retry=QUICK,
            link_wait=30.0,
            shutdown_flush=2.0,
            outbox_settle=0.3,
            setting_names=spell,
        )
        trainer = self.trainer

        def factory(package_dir: Path, manifest: Manifest) -> CopyTrainer:
            return trainer

        t = self.timeout
        self.store = HoldingStore(plan.work_dir / "outbox")
        settings = load_settings(
            {
                "combiner": "127.0.0.1",
                "combiner_port": self.proxy.port,
                "local_package": package,
                "work_dir": plan.work_dir,
                "name": "rig",
                "client_id": self.client_id,
            }
        )
        self.container = build_container(settings)
        self.life = await self.container.lifecycle(
            plan=plan,
            connector=GrpcConnector(
                None, rpc_timeout=t, connect_timeout=t, progress_timeout=t, unknown_timeout=t
            ),
            trainer_factory=factory,
            outbox_store=self.store,
            usage_probe=None,
        )
        self._stop = asyncio.Event()
        self._runner = asyncio.create_task(self.life.run(self._stop), name="rig-client")

    async def wait_online(self, timeout: float = 20.0) -> float:
        """Seconds until the client is subscribed and heartbeating again."""
        started = time.monotonic()
        await self.combiner.wait_for_clients(1, timeout)
        if self.client_id not in self.combiner.online_clients():
            raise AssertionError(f"the client did not come back within {timeout:g} s")
        return time.monotonic() - started

    def submit_round(self, model_id: str | None = None) -> str:
        self.rounds += 1
        config = {
            "round_id": str(self.rounds),
            "session_id": self.session_id,
            "round_timeout": str(self.round_timeout),
            "model_id": model_id or self.seed_id,
        }
        return self.combiner.submit_task(
            self.client_id, TaskKind.TRAIN, model_id or self.seed_id, self.session_id, json.dumps(config)
        )

    async def wait_update(self, correlation_id: str, timeout: float = 30.0) -> list[UpdateRecord]:
        await self.combiner.wait_for_updates([correlation_id], timeout)
        return self.combiner.updates_for(correlation_id)

    async def settle(self, correlation_id: str, seconds: float = 0.5) -> list[UpdateRecord]:
        """The round's records after a quiet moment (so a late duplicate would show)."""
        await asyncio.sleep(seconds)
        return self.combiner.updates_for(correlation_id)

    async def crash_combiner(self) -> None:
        await self.combiner.crash()

    async def restart_combiner(self, down: float = 0.3) -> None:
        await self.combiner.crash()
        await asyncio.sleep(down)
        await self.combiner.start("127.0.0.1", self._port)

    def client_error(self) -> BaseException | None:
        if self._runner is None or not self._runner.done() or self._runner.cancelled():
            return None
        return self._runner.exception()

    async def stop(self) -> None:
        self._stop.set()
        if self._runner is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._runner, 10)
        if self.container is not None:
            await self.container.shutdown_resources()
        await self.proxy.stop()
        await self.combiner.stop()
