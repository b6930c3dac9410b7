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
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ..adapters.clock import SystemClock
from ..adapters.observers.transfer_log import TransferLog
from ..adapters.package_archive import TarPackageUnpacker
from ..adapters.sandbox.federation import Federation, RoundResult
from ..domain.errors import ConfigError, FedClientError
from ..domain.observe import TransferKind
from ..domain.status import StatusBoard, human_bytes
from .container import build_container, client_lifecycle
from .demo import demo_package
from .settings_load import load_settings
from .stderr_writer import flush_background_stderr
from .user_paths import output_file, package_dir

log = logging.getLogger("fedclient.sandbox")
T = TypeVar("T")
# On SIGINT/SIGTERM the clients get this long to finish their tasks, then they are cancelled.
STOP_WAIT = 5.0


def run_sandbox(args: argparse.Namespace) -> int:
    if args.rounds < 1 or args.clients < 1:
        raise ConfigError("--rounds and --clients must be at least 1")
    package = package_dir(args.package, "--package").resolve() if args.package is not None else demo_package()
    output_file(args.json, "--json")
    output_file(args.plot, "--plot")
    if args.plot:
        from .sandbox_plot import check_plotting

        check_plotting()
    boards: list[StatusBoard] = []
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="fedclient-sandbox-"))
        )
        policy_file = args.policy_file.resolve() if getattr(args, "policy_file", None) else None
        epsilons: list[float] = []
        try:
            results = asyncio.run(
                _cancelled_on_signals(
                    sandbox(
                        package,
                        work.resolve(),
                        args.rounds,
                        args.clients,
                        args.round_timeout,
                        args.log_level,
                        boards,
                        policy_file=policy_file,
                        epsilons=epsilons,
                    ),
                    lambda: shutil.rmtree(work, ignore_errors=True) if args.work_dir is None else None,
                )
            )
        except asyncio.CancelledError:  # a signal: stopped, the temporary work dir removed
            raise KeyboardInterrupt from None
    spent = epsilons if any(b.snapshot.privacy is not None for b in boards) else None
    print(format_table(results, spent))
    print(format_summary(results, boards, time.monotonic() - started))
    if args.json:
        rounds = [r.as_json() for r in results]
        for entry, epsilon in zip(rounds, spent or [], strict=False):
            entry["epsilon_spent"] = epsilon
        args.json.write_text(json.dumps({"rounds": rounds}, indent=2) + "\n")
    if args.plot:
        from .sandbox_plot import plot_rounds

        plot_rounds(results, args.plot, spent)
        print(f"plot of the per-round metrics written to {args.plot}")
    return 0


async def sandbox(
    package: Path,
    work: Path,
    rounds: int,
    clients: int,
    round_timeout: float,
    log_level: str = "WARNING",
    boards: list[StatusBoard] | None = None,
    policy_file: Path | None = None,
    epsilons: list[float] | None = None,
) -> list[RoundResult]:
    """Run the federation; ``boards`` (if given) receives each client's StatusBoard.

    ``policy_file``: every client enforces this site policy (its privacy section too);
    ``epsilons`` (if given) receives, after each round, the largest ε any client has spent.
    """
    federation = Federation(package, work / "server", clients, round_timeout=round_timeout)
    # The sandbox is a try-out run from fedclient's own venv: a package without a
    # python_env runs with that interpreter (one with a python_env gets it built).
    own = None if TarPackageUnpacker().load_manifest(package).python_env else sys.executable
    await federation.start()
    stop = asyncio.Event()
    runners: list[asyncio.Task[None]] = []
    opened = contextlib.AsyncExitStack()  # every client's adapters, closed after the clients stop
    try:
        for index in range(clients):
            settings = load_settings(
                {
                    "api_url": federation.api_url,
                    "name": f"sandbox-client-{index}",
                    "work_dir": work / f"client-{index}",
                    "log_level": log_level,
                    "python": own,
                    "policy_file": policy_file,
                }
            ).model_copy(update={"package_extract_dir": None})  # N clients: each its own private dir
            # Each client trains on its own shard of the example's data.
            env = {"FEDN_CLIENT_INDEX": str(index), "FEDN_NUM_CLIENTS": str(clients)}
            board = StatusBoard([TransferLog()], now=SystemClock().monotonic)
            if boards is not None:
                boards.append(board)
            container = build_container(settings, trainer_env=env, observer=board)
            lifecycle = await opened.enter_async_context(client_lifecycle(container))
            runners.append(asyncio.create_task(lifecycle.run(stop), name=f"client-{index}"))
        await _wait_online(federation, runners)

        def spent(result: RoundResult) -> None:
            if epsilons is not None:
                figures = [b.snapshot.privacy.epsilon for b in boards or [] if b.snapshot.privacy is not None]
                epsilons.append(max(figures, default=0.0))

        results = await federation.run(rounds, on_round=spent)
        await _settle(boards or [])
        return results
    finally:
        stop.set()
        # All clients together, not one after the other: a stop within 10 s however many train.
        if runners:
            await asyncio.wait(runners, timeout=STOP_WAIT)
        for runner in runners:
            runner.cancel()  # a task still running: its training process is killed
        await asyncio.gather(*runners, return_exceptions=True)
        await opened.aclose()
        await federation.stop()


async def _cancelled_on_signals(work: Coroutine[Any, Any, T], before_exit: Callable[[], None]) -> T:
    """Run ``work``; SIGINT or SIGTERM cancels it, so every ``finally`` (clients, servers) runs.

    A second signal ends the process at once with 128 + its number, ``before_exit`` (the
    temporary work dir's removal) first: no ``finally`` runs then.
    """
    loop, me = asyncio.get_running_loop(), asyncio.current_task()
    assert me is not None
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        name = signal.Signals(sig).name
        if len(received) == 1:
            again = "Ctrl-C again" if sig == signal.SIGINT else "a second SIGTERM"
            log.warning(
                "stopping on %s: the clients get %.0f s, then the federation stops; %s to stop now",
                name,
                STOP_WAIT,
                again,
            )
            me.cancel()
            return
        log.warning("%s again: stopping now", name)
        with contextlib.suppress(Exception):
            before_exit()
        flush_background_stderr(1.0)
        os._exit(128 + sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await work
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _settle(boards: list[StatusBoard], limit: float = 5.0) -> None:
    """Let each client finish the task it is reporting on, so the summary counts it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while any(b.snapshot.state.name != "IDLE" for b in boards) and loop.time() < deadline:
        await asyncio.sleep(0.05)


async def _wait_online(federation: Federation, runners: list[asyncio.Task[None]]) -> None:
    waiting = asyncio.create_task(federation.wait_for_clients(timeout=120))
    done, _ = await asyncio.wait({waiting, *runners}, return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        waiting.cancel()
        for runner in done:
            runner.result()  # a client that died before joining: raise its error
        raise FedClientError("a sandbox client stopped before joining")
    waiting.result()


def format_table(results: list[RoundResult], epsilons: list[float] | None = None) -> str:
    """One row per round; with ``epsilons`` (the site policy has a privacy section) an ε-spent column."""
    keys = sorted({k for r in results for k in r.metrics})
    spent = ["ε spent"] if epsilons is not None else []
    header = ["round", "global model", "updates", *keys, *spent, "seconds"]
    rows = [
        [
            str(r.round),
            r.model_id[:8],
            str(r.updates),
            *(f"{r.metrics.get(k, float('nan')):.4f}" for k in keys),
            *([f"{epsilons[i]:.4g}" if i < len(epsilons) else "-"] if epsilons is not None else []),
            f"{r.seconds:.1f}",
        ]
        for i, r in enumerate(results)
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def format_summary(results: list[RoundResult], boards: list[StatusBoard], seconds: float) -> str:
    """The final report: what the federation achieved and what each client did."""
    lines = [f"summary: {len(results)} rounds with {len(boards)} clients in {seconds:.1f} s"]
    key = next((k for k in ("accuracy", "test_accuracy") if results and k in results[-1].metrics), None)
    if key is not None and key in results[0].metrics:
        first, last = results[0].metrics[key], results[-1].metrics[key]
        lines.append(f"  {key}: {first:.4f} after round 1, {last:.4f} after round {results[-1].round}")
    lines.append(
        f"  updates aggregated: {sum(r.updates for r in results)}, "
        f"validations: {sum(r.validations for r in results)}"
    )
    privacy = [b.snapshot.privacy for b in boards if b.snapshot.privacy is not None]
    if privacy:
        worst = max(privacy, key=lambda p: p.epsilon)
        lines.append(f"  privacy (the client that spent most): {worst.describe()}")
    for index, board in enumerate(boards):
        snap = board.snapshot
        received = sum(
            snap.transfers[k].nbytes for k in (TransferKind.PACKAGE_DOWNLOAD, TransferKind.MODEL_DOWNLOAD)
        )
        sent = snap.transfers[TransferKind.MODEL_UPLOAD].nbytes
        lines.append(
            f"  sandbox-client-{index}: {snap.done()} tasks done, {snap.failed()} failed; "
            f"received {human_bytes(received)}, sent {human_bytes(sent)}; reconnects {snap.reconnects}"
        )
    return "\n".join(lines)
