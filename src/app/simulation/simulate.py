"""`fedclient simulate`: N clients in one process, with in-process callbacks, against one federation.

Without ``--api-url`` a sandbox federation (controller + combiner + FedAvg) runs in this
process and ``--rounds`` rounds are trained. With ``--api-url`` the clients join that
controller (a sandbox in another process, or a real FEDn network whose rounds someone
else starts) and serve until ``--duration`` seconds have passed or SIGINT/SIGTERM.

The clients are one ``ClientGroup`` (``app/simulation/group.py``): full production clients
built by the composition root, sharing the controller client, the channels and one
callback trainer.

Printed at the end: RSS before and with the clients, per client, and the task
latency (TaskRequest received -> result acknowledged) and overhead (latency minus
the callbacks' own time) percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...domain.errors import ConfigError, FedClientError
from ..signals import stop_on_signals
from ..stderr_writer import flush_background_stderr
from ..user_paths import output_file, package_dir
from .group import ClientGroup, GroupSpec, heartbeat_interval, refuse_privacy_policy, rss_mib
from .overload import OverloadReport, aggregated_client_logs
from .scratch import remove_scratch, remove_tree
from .task_timing import TaskTimes

# The sandbox keeps the last this many heartbeats and calls (not all: thousands of clients beat).
HISTORY = 10_000
# FEDn 0.33's combiner runs a fixed pool of 350 gRPC threads (fedn/network/grpc/server.py) and
# each open TaskStream holds one for its whole life; heartbeats, statuses and transfers need the
# rest. Measured (bench/fedn_combiner.py, one combiner, examples/tiny): 345 clients finished a
# round, 350 did not (every heartbeat DEADLINE_EXCEEDED, the round Failed with no update), 450
# never all came online. Warned past 340, a few threads left for the other calls.
FEDN_GRPC_THREADS = 350
FEDN_TASK_STREAMS = 340
FEDN_ONLINE_WINDOW = 10.0  # FEDn 0.33: online = last heartbeat younger than this

if TYPE_CHECKING:  # the sandbox needs numpy, which `fedclient run` alone does not
    from ...adapters.sandbox.federation import Federation, RoundResult

log = logging.getLogger("fedclient.simulate")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("simulate", help="run N clients in this process with in-process callbacks")
    p.add_argument("--clients", type=int, default=10, help="number of clients (default 10)")
    p.add_argument("--package", type=Path, required=True, help="package directory (fedn.yaml + callbacks.py)")
    p.add_argument("--callbacks", default="callbacks", help="module in the package with train/validate")
    p.add_argument("--rounds", type=int, default=3, help="rounds to train on the built-in sandbox")
    p.add_argument("-u", "--api-url", help="join this controller instead of starting a sandbox")
    p.add_argument("-p", "--api-port", type=int, help="controller port")
    p.add_argument("--token", help="authentication token")
    p.add_argument("--duration", type=float, help="with --api-url: stop after this many seconds")
    p.add_argument("--round-timeout", type=float, default=600.0, help="sandbox: seconds per round")
    p.add_argument("--join-timeout", type=float, default=600.0, help="seconds for all clients to connect")
    p.add_argument("--work-dir", type=Path, help="scratch directory (default: a temporary one)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--log-level", default="WARNING", type=str.upper, help="log level")
    from .ray_driver import add_ray_arguments  # Ray itself is imported only with --ray

    add_ray_arguments(p)


@dataclass
class SimulationReport:
    clients: int
    connected: int
    rss_before_mib: float
    rss_idle_mib: float
    join_seconds: float
    rounds: list[RoundResult] = field(default_factory=list)
    times: TaskTimes = field(default_factory=TaskTimes)
    cpu_seconds: float = 0.0
    abandoned: int = 0  # callbacks still running when a stopped simulation ended
    clients_abandoned: int = 0  # clients still closing their sessions when the simulation ended
    rss_peak_mib: float = 0.0  # the process's peak (VmHWM) at the end, rounds included
    log_lines: int = 0  # aggregated overload lines written for the clients
    client_warnings: int = 0  # client warnings counted into them instead of written
    failed: str | None = None  # why the run could not go on (overload)
    stop_s: dict[str, float] = field(default_factory=dict)  # the close's steps, seconds each

    @property
    def rss_per_client_kib(self) -> float:
        return (self.rss_idle_mib - self.rss_before_mib) * 1024 / max(self.clients, 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "connected": self.connected,
            "rss_before_mib": self.rss_before_mib,
            "rss_idle_mib": self.rss_idle_mib,
            "rss_per_client_kib": self.rss_per_client_kib,
            "rss_peak_mib": self.rss_peak_mib,
            "log_lines": self.log_lines,
            "client_warnings": self.client_warnings,
            "failed": self.failed,
            "stop_s": self.stop_s,
            "join_seconds": self.join_seconds,
            "cpu_seconds": self.cpu_seconds,
            "tasks": len(self.times.done),
            "latency_s": self.times.percentiles("latency"),
            "overhead_s": self.times.percentiles("overhead"),
            "train_latency_s": self.times.percentiles("latency", "train"),
            "rounds": [r.as_json() for r in self.rounds],
        }

    def format(self) -> str:
        def ms(values: dict[str, float]) -> str:
            if not values:
                return "no tasks"
            return "  ".join(f"{k} {v * 1000:.1f} ms" for k, v in values.items())

        lines = []
        if self.rounds:
            from ..sandbox import format_table

            lines += [format_table(self.rounds), ""]
        lines += [
            f"clients {self.clients} in one process, {self.connected} connected in {self.join_seconds:.1f} s",
            f"RSS {self.rss_before_mib:.0f} MiB before the clients, "
            f"{self.rss_idle_mib:.0f} MiB with them idle "
            f"({self.rss_per_client_kib:.0f} KiB per client), peak {self.rss_peak_mib:.0f} MiB; "
            f"CPU {self.cpu_seconds:.1f} s",
            f"client warnings {self.client_warnings}, written as {self.log_lines} aggregated lines",
            f"closed in {sum(self.stop_s.values()):.1f} s ("
            + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.stop_s.items())
            + ")",
            f"tasks {len(self.times.done)}: latency {ms(self.times.percentiles('latency'))}",
            f"  overhead (latency minus callbacks) {ms(self.times.percentiles('overhead'))}",
        ]
        return "\n".join(lines)


def pacing(clients: int, api_url: str | None) -> tuple[float, dict[str, Any]]:
    """Seconds between a simulated client's heartbeats, and the sandbox's settings to match them.

    The sandbox is ours: its online window widens with the paced heartbeats, and it keeps a
    bounded history. A controller given by --api-url may be FEDn's, which counts a client
    offline after 10 s without one, so the pace stays within that.
    """
    beat = heartbeat_interval(clients, None if api_url is None else FEDN_ONLINE_WINDOW)
    return beat, {"history": HISTORY, "online_window": max(FEDN_ONLINE_WINDOW, 3 * beat)}


async def simulate(
    package: Path,
    clients: int,
    work: Path,
    *,
    rounds: int = 3,
    api_url: str | None = None,
    api_port: int | None = None,
    token: str | None = None,
    duration: float | None = None,
    round_timeout: float = 600.0,
    join_timeout: float = 600.0,
    callbacks: str = "callbacks",
    log_level: str = "WARNING",
    stop: asyncio.Event | None = None,
) -> SimulationReport:
    stop = stop or asyncio.Event()
    beat, sandbox_pacing = pacing(clients, api_url)
    spec = GroupSpec(
        package,
        api_url or "",
        work,
        count=clients,
        run_id=uuid.uuid4().hex[:6],
        api_port=api_port,
        token=token,
        callbacks=callbacks,
        log_level=log_level,
        heartbeat_interval=beat,
    )
    times = TaskTimes()
    group = ClientGroup(spec, stop, times)
    group.load()  # a broken callbacks module fails here, before a federation starts
    refuse_privacy_policy(log_level)  # before anything starts
    federation: Federation | None = None
    if api_url is None:
        from ...adapters.sandbox.federation import Federation

        federation = Federation(
            package,
            work / "server",
            clients,
            round_timeout=round_timeout,
            **sandbox_pacing,
        )
        await federation.start()
        group.spec = replace(spec, api_url=federation.api_url)
    cpu0 = time.process_time()
    rss_before = rss_mib()
    report = SimulationReport(clients, 0, rss_before, rss_before, 0.0, times=times)
    overload = OverloadReport(clients, stop)
    try:
        with aggregated_client_logs(overload):  # its last line (the stop's warnings) when it closes
            watcher = asyncio.create_task(overload.watch(), name="fedclient-sim-overload")
            ended = False  # _run returned (stopped or done): run_simulate ends the process next
            try:
                await _run(group, federation, report, rounds, duration, join_timeout, stop, cpu0)
                ended = True
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                stop.set()
                report.abandoned = await group.close(exiting=ended)
                report.clients_abandoned = group.clients_abandoned
                report.stop_s = dict(group.stop_seconds)
                # With clients abandoned the process ends next (run_simulate): stopping the sandbox
                # under them only made 5,000 of them react to their streams ending (8.3 s). On an
                # error the process does not end here, so everything is closed as usual.
                if federation is not None and not (ended and group.clients_abandoned):
                    t_federation = time.monotonic()
                    await federation.stop()
                    report.stop_s["federation"] = round(time.monotonic() - t_federation, 3)
    finally:
        report.log_lines, report.client_warnings = overload.lines, overload.swallowed
        report.failed = overload.failed
        report.rss_peak_mib = rss_mib("VmHWM")
    return report


async def _run(
    group: ClientGroup,
    federation: Federation | None,
    report: SimulationReport,
    rounds: int,
    duration: float | None,
    join_timeout: float,
    stop: asyncio.Event,
    cpu0: float,
) -> None:
    """Start the clients, wait until they joined, then the rounds (or ``duration``), into ``report``."""
    clients, times = report.clients, report.times
    t0 = time.monotonic()
    await group.start()
    if stop.is_set() or not await _wait_joined(times, clients, group.runners, join_timeout, federation, stop):
        return  # stopped (SIGINT/SIGTERM) before every client had joined
    report.join_seconds = time.monotonic() - t0
    report.connected = times.connected
    await asyncio.sleep(min(3.0, 0.5 + clients / 500))  # settle: the first heartbeats are out
    report.rss_idle_mib = rss_mib()
    log.info("%d clients connected in %.1f s", times.connected, report.join_seconds)
    if federation is None:
        _warn_fedn_capacity(clients, times.combiners)
    if federation is not None:
        report.rounds = await federation.run_until_stopped(rounds, stop)
    else:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    report.cpu_seconds = time.process_time() - cpu0


def _warn_fedn_capacity(clients: int, combiners: set[str]) -> None:
    """One line when the clients outnumber the task streams FEDn's combiners can hold."""
    room = FEDN_TASK_STREAMS * max(len(combiners), 1)
    if clients > room:
        log.warning(
            "%d clients on %d combiner(s): a FEDn 0.33 combiner holds one of its %d gRPC threads per "
            "task stream, and past about %d clients per combiner its heartbeats time out and rounds "
            "fail; add combiners or simulate fewer clients",
            clients,
            len(combiners),
            FEDN_GRPC_THREADS,
            FEDN_TASK_STREAMS,
        )


async def _wait_joined(
    times: TaskTimes,
    clients: int,
    runners: list[asyncio.Task[None]],
    timeout: float,
    federation: Federation | None,
    stop: asyncio.Event,
) -> bool:
    """True once every client is connected (and, on the sandbox, online); False when stopped first."""
    deadline = time.monotonic() + timeout
    while times.connected < clients or (
        federation is not None
        and federation.combiner is not None
        and len(federation.combiner.online_clients()) < clients
    ):
        failed = [r for r in runners if r.done()]
        if failed:
            failed[0].result()  # a client that died before joining: raise its error
            raise FedClientError("a simulated client stopped before joining")
        if time.monotonic() > deadline:
            raise FedClientError(
                f"only {times.connected} of {clients} clients connected within {timeout:.0f} s"
            )
        if stop.is_set():
            return False
        await asyncio.sleep(0.2)
    return True


def run_simulate(args: argparse.Namespace) -> int:
    if args.clients < 1 or args.rounds < 1:
        raise ConfigError("--clients and --rounds must be at least 1")
    package = package_dir(args.package, "--package").resolve()
    output_file(args.json, "--json")
    if args.ray is not None:
        from .ray_driver import run_ray

        return run_ray(args, package)
    if args.actors is not None or args.host is not None:
        raise ConfigError("--actors and --host are for --ray (the clients as Ray actors)")

    async def main(work: Path, temporary: bool) -> SimulationReport:
        stop = asyncio.Event()

        def outlook() -> str:
            return f"stopping {args.clients} simulated clients (callbacks still running are abandoned)"

        def remove_work() -> None:  # a second signal: no finally runs, so the temp dir goes here
            if temporary:
                shutil.rmtree(work, ignore_errors=True)

        with stop_on_signals(stop, outlook, remove_work, logging.WARNING):
            return await simulate(
                package,
                args.clients,
                work,
                rounds=args.rounds,
                api_url=args.api_url,
                api_port=args.api_port,
                token=args.token,
                duration=args.duration,
                round_timeout=args.round_timeout,
                join_timeout=args.join_timeout,
                callbacks=args.callbacks,
                log_level=args.log_level,
                stop=stop,
            )

    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="fedclient-simulate-"))
        )
        # Closed before the temporary dir is removed, unless the exit below comes first.
        runner = stack.enter_context(asyncio.Runner())
        try:
            report = runner.run(main(work.resolve(), args.work_dir is None))
        finally:
            if args.work_dir is not None:  # a temporary work dir goes as a whole below
                remove_scratch(work)
        if report.abandoned or report.clients_abandoned:
            # Python would wait for those threads, and asyncio for those clients, at exit: a
            # stopped simulation does not (their results are not kept anyway).
            _print_report(report, args.json)
            if report.abandoned:
                log.warning("%d callback(s) still running were abandoned", report.abandoned)
            if report.clients_abandoned:
                log.warning(
                    "%d client(s) still closing their sessions were abandoned", report.clients_abandoned
                )
            if args.work_dir is None:
                remove_scratch(work)  # first: its entries are spread over the removing threads
                remove_tree(work)
            sys.stdout.flush()
            flush_background_stderr(1.0)
            os._exit(1 if report.failed else 0)
    _print_report(report, args.json)
    return 1 if report.failed else 0


def _print_report(report: SimulationReport, json_out: Path | None) -> None:
    print(report.format())
    if json_out:
        json_out.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    if report.failed:
        log.error("simulate stopped: %s", report.failed)
