"""Recovery times against the sandbox: how long a real client (real adapters) takes to come back.

    python bench/recovery.py [--outage 3]

Each scenario starts a fresh sandbox federation (examples/digits) and one client in
this process, injects one fault, and prints the time from the fault's end (the server
is back, the token expired, the signal was sent) to the client being served again:

* combiner-restart: the combiner stops for ``--outage`` s and restarts on its port;
* controller-late:  the controller is down when the client starts, up after ``--outage`` s;
* token-expiry:     every token expires; time to the refresh, and the next round runs;
* wrong-server:     the client is pointed at a gRPC server without FEDn's services;
* stop-idle:        SIGTERM-equivalent (the stop event) while idle, to the end of run().
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc.aio
from fedclient.adapters.sandbox.federation import Federation
from fedclient.app.container import build_container, client_lifecycle
from fedclient.app.settings_load import load_settings
from fedclient.domain.errors import FedClientError
from fedclient.domain.lifecycle import Lifecycle

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


@contextlib.asynccontextmanager
async def client(work: Path, **settings: object) -> AsyncIterator[tuple[Lifecycle, asyncio.Task[None]]]:
    container = build_container(load_settings({"name": "bench", "work_dir": work, **settings}))
    stop = asyncio.Event()
    async with client_lifecycle(container) as life:
        runner = asyncio.create_task(life.run(stop))
        life._bench_stop = stop  # type: ignore[attr-defined]
        try:
            yield life, runner
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner, 30)


async def until(condition: Callable[[], bool], timeout: float = 120) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def combiner_restart(tmp: Path, outage: float) -> str:
    fed = Federation(DIGITS, tmp / "server", expected_clients=1, round_timeout=60)
    await fed.start()
    try:
        assert fed.combiner is not None
        async with client(tmp / "client", api_url=fed.api_url) as (life, _):
            await fed.wait_for_clients(60)
            host, port = fed.combiner.address
            connects = life.connects
            await fed.combiner.stop()
            await asyncio.sleep(outage)
            await fed.combiner.start(host, port)
            back = await until(lambda: life.connects > connects)
            await fed.run(1)
        return f"client reconnected {back:.1f} s after the combiner was back; the next round completed"
    finally:
        await fed.stop()


async def controller_late(tmp: Path, outage: float) -> str:
    fed = Federation(DIGITS, tmp / "server", expected_clients=1, round_timeout=60)
    await fed.start()
    try:
        assert fed.controller is not None and fed.controller.port is not None
        port, api_url = fed.controller.port, fed.api_url
        fed.controller.stop()
        async with client(tmp / "client", api_url=api_url) as (life, _):
            await asyncio.sleep(outage)
            fed.controller.start("127.0.0.1", port)
            joined = await until(lambda: life.connects > 0)
            await fed.run(1)
        return f"client connected {joined:.1f} s after the controller came up; a round completed"
    finally:
        await fed.stop()


async def token_expiry(tmp: Path, outage: float) -> str:
    fed = Federation(DIGITS, tmp / "server", expected_clients=1, round_timeout=60, token_ttl=3600)
    await fed.start()
    try:
        tokens = fed.tokens
        assert tokens is not None
        extra = {
            "token": fed.token,
            "refresh_token": tokens.refresh_token,
            "refresh_token_uri": fed.refresh_uri,
        }
        async with client(tmp / "client", api_url=fed.api_url, **extra) as (life, _):
            await fed.wait_for_clients(60)
            [first] = await fed.run(1)
            tokens.expire_all()
            refreshed = await until(lambda: tokens.refreshes >= 1)
            await fed.run_round(2, first.model_id)
        return (
            f"refreshed {refreshed:.1f} s after expiry (1 refresh, {len(tokens.refused)} refused calls, "
            f"{life.connects} connection); the next round completed"
        )
    finally:
        await fed.stop()


async def wrong_server(tmp: Path, outage: float) -> str:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        settings = {"combiner": "127.0.0.1", "combiner_port": port, "local_package": DIGITS}
        started = time.monotonic()
        async with client(tmp / "client", **settings) as (_, runner):
            with contextlib.suppress(FedClientError):
                await asyncio.wait_for(runner, 60)
            took = time.monotonic() - started
            error = runner.exception()
        return f"stopped after {took:.2f} s: {type(error).__name__}: {str(error)[:90]}…"
    finally:
        await server.stop(0)


async def stop_idle(tmp: Path, outage: float) -> str:
    fed = Federation(DIGITS, tmp / "server", expected_clients=1, round_timeout=60)
    await fed.start()
    try:
        async with client(tmp / "client", api_url=fed.api_url) as (life, runner):
            await fed.wait_for_clients(60)
            started = time.monotonic()
            life._bench_stop.set()  # type: ignore[attr-defined]
            await asyncio.wait_for(runner, 30)
            took = time.monotonic() - started
        return f"run() returned {took:.2f} s after the stop (hooks run, channel closed)"
    finally:
        await fed.stop()


SCENARIOS = {
    "combiner-restart": combiner_restart,
    "controller-late": controller_late,
    "token-expiry": token_expiry,
    "wrong-server": wrong_server,
    "stop-idle": stop_idle,
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=3.0, help="seconds a server stays down")
    parser.add_argument("--only", choices=sorted(SCENARIOS), help="run one scenario")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for name, scenario in SCENARIOS.items():
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"recovery-{name}-") as tmp:
            print(f"{name:17} {await scenario(Path(tmp), args.outage)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
