"""`fedclient sandbox`: a local federation with real clients, to try a compute package end to end.

The servers come from adapters.sandbox; the clients are built by the same
container as `fedclient run`, so they take exactly the production code path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
from pathlib import Path

from ..adapters.package_archive import TarPackageUnpacker
from ..adapters.sandbox.federation import Federation, RoundResult
from ..domain.errors import ConfigError
from .container import build_container, close_adapters
from .settings import load_settings

log = logging.getLogger("fedclient.sandbox")


def run_sandbox(args: argparse.Namespace) -> int:
    if args.rounds < 1 or args.clients < 1:
        raise ConfigError("--rounds and --clients must be at least 1")
    package = args.package.resolve()
    if not (package / "fedn.yaml").is_file():
        raise ConfigError(f"--package {args.package}: no fedn.yaml in that directory")
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="fedclient-sandbox-"))
        )
        results = asyncio.run(
            sandbox(package, work.resolve(), args.rounds, args.clients, args.round_timeout, args.log_level)
        )
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps({"rounds": [r.as_json() for r in results]}, indent=2) + "\n")
    return 0


async def sandbox(
    package: Path, work: Path, rounds: int, clients: int, round_timeout: float, log_level: str = "WARNING"
) -> list[RoundResult]:
    federation = Federation(package, work / "server", clients, round_timeout=round_timeout)
    # The sandbox is a try-out run from fedclient's own venv: a package without a
    # python_env runs with that interpreter (one with a python_env gets it built).
    own = None if TarPackageUnpacker().load_manifest(package).python_env else sys.executable
    await federation.start()
    stop = asyncio.Event()
    runners: list[asyncio.Task[None]] = []
    lifecycles = []
    try:
        for index in range(clients):
            settings = load_settings(
                {
                    "api_url": federation.api_url,
                    "name": f"sandbox-client-{index}",
                    "work_dir": work / f"client-{index}",
                    "log_level": log_level,
                    "python": own,
                }
            )
            # Each client trains on its own shard of the example's data.
            env = {"FEDN_CLIENT_INDEX": str(index), "FEDN_NUM_CLIENTS": str(clients)}
            lifecycle = build_container(settings, trainer_env=env).lifecycle()
            lifecycles.append(lifecycle)
            runners.append(asyncio.create_task(lifecycle.run(stop), name=f"client-{index}"))
        await _wait_online(federation, runners)
        return await federation.run(rounds)
    finally:
        stop.set()
        for runner in runners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner, 10)
        for lifecycle in lifecycles:
            await close_adapters(lifecycle)
        await federation.stop()


async def _wait_online(federation: Federation, runners: list[asyncio.Task[None]]) -> None:
    waiting = asyncio.create_task(federation.wait_for_clients(timeout=120))
    done, _ = await asyncio.wait({waiting, *runners}, return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        waiting.cancel()
        for runner in done:
            runner.result()  # a client that died before joining: raise its error
        raise ConfigError("a sandbox client stopped before joining")
    waiting.result()


def format_table(results: list[RoundResult]) -> str:
    keys = sorted({k for r in results for k in r.metrics})
    header = ["round", "global model", "updates", *keys, "seconds"]
    rows = [
        [
            str(r.round),
            r.model_id[:8],
            str(r.updates),
            *(f"{r.metrics.get(k, float('nan')):.4f}" for k in keys),
            f"{r.seconds:.1f}",
        ]
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)
