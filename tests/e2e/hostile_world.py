"""A sandbox controller and combiner that misbehave on purpose, and a real client against them.

The client is the production container (real httpx and gRPC adapters, real unpacker,
real subprocess trainer); only the servers are the sandbox's, with their test switches.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dependency_injector import providers
from fedclient.adapters.package_build import build_package
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.adapters.sandbox.controller import SandboxController
from fedclient.app.container import Container, build_container
from fedclient.app.settings import Settings
from fedclient.app.settings_load import load_settings
from fedclient.domain.lifecycle import Lifecycle
from fedclient.domain.model import TaskKind
from fedclient.domain.ports import TrainerFactory

VALIDATE = """\
import json, pathlib, sys
model = pathlib.Path(sys.argv[1]).read_bytes()
if model.startswith(b"echo"):
    # Package code that got hold of the client's secrets prints them and fails.
    print("leaking", pathlib.Path("secrets.txt").read_text())
    sys.exit(3)
json.dump({"accuracy": 1.0, "bytes": len(model)}, open(sys.argv[2], "w"))
"""
MANIFEST = "entry_points:\n  validate:\n    command: python validate.py\n"
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Proxy login</title></head><body>Sign in</body></html>"


@dataclass
class HostileWorld:
    controller: SandboxController
    combiner: SandboxCombiner
    life: Lifecycle
    container: Container
    client_id: str = "site-a-id"

    def validate(self, model_id: str, data: str = "") -> str:
        return self.combiner.submit_task(self.client_id, TaskKind.VALIDATE, model_id, "s1", data)

    async def wait_statuses(self, correlation_ids: list[str], level: str, timeout: float = 60) -> list[Any]:
        async with asyncio.timeout(timeout):
            while True:
                found = [s for s in self.combiner.statuses if s.correlation_id in correlation_ids]
                if {s.correlation_id for s in found if s.level == level} >= set(correlation_ids):
                    return [s for s in found if s.level == level]
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def hostile_world(
    tmp_path: Path,
    token: str | None = None,
    extra: dict[str, Any] | None = None,
    secrets_text: str = "",
    scripted: dict[str, list[tuple[int, bytes, str]]] | None = None,
    on_settings: Callable[[Settings], None] | None = None,
    wrap_trainers: Callable[[TrainerFactory], TrainerFactory] | None = None,
) -> AsyncIterator[HostileWorld]:
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "fedn.yaml").write_text(MANIFEST)
    (src / "validate.py").write_text(VALIDATE)
    (src / "secrets.txt").write_text(secrets_text)
    archive = build_package(src, tmp_path / "package.tgz")
    combiner = SandboxCombiner(tmp_path / "models", require_token=token)
    port = await combiner.start("127.0.0.1", 0)
    seed = tmp_path / "seed.bin"
    seed.write_bytes(b"seed model")
    combiner.put_model("seed", seed)
    controller = SandboxController("127.0.0.1", port, package=archive, token=token)
    controller.scripted = scripted or {}
    controller.start("127.0.0.1", 0)
    values = {
        "api_url": controller.api_url,
        "name": "site-a",
        "client_id": "site-a-id",
        "work_dir": tmp_path / "client",
        **({"token": token} if token else {}),
        **(extra or {}),
    }
    settings = load_settings(values)
    if on_settings is not None:
        on_settings(settings)
    container = build_container(settings)
    if wrap_trainers is not None:
        container.trainer_factory.override(providers.Object(wrap_trainers(container.trainer_factory())))
    life = await container.lifecycle()
    stop = asyncio.Event()
    runner = asyncio.create_task(life.run(stop))
    world = HostileWorld(controller, combiner, life, container)
    try:
        async with asyncio.timeout(60):
            while "site-a-id" not in combiner.online_clients():
                if runner.done():
                    runner.result()
                await asyncio.sleep(0.05)
        yield world
        assert not runner.done(), "the client must still be serving"
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 15)
        await container.shutdown_resources()
        await combiner.stop()
        controller.stop()
