"""`fedclient simulate --ray [ADDRESS]`: the N clients as Ray actors spread over a Ray cluster.

Ray does the distributing: the N clients are split into ``--actors`` groups, each an
async actor (``app/simulation/ray_actor.py``) running one ``ClientGroup`` in its own event loop,
placed by Ray's ``SPREAD`` scheduling strategy. Nothing here picks nodes. This driver
runs the sandbox federation (on an address the nodes reach) or points the actors at
``--api-url``, waits for every client to join, runs the rounds, and gathers each
actor's finished tasks, node id and RSS.

A node lost mid-run takes its actors with it: their clients are reported in one
line per node and declared lost to the sandbox, whose round then goes on with the
others (it no longer waits for them). On SIGINT/SIGTERM, or at the end, every actor
is asked to stop, given ``STOP_WAIT`` seconds to report, then killed; a local Ray that
``ray.init()`` started here is shut down with the driver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ...adapters.package_build import build_package
from ...adapters.trainers.callback_trainer import load_package_callbacks
from ...domain.errors import ConfigError, FedClientError
from ..extras import require_extra
from .group import GroupSpec, refuse_privacy_policy
from .ray_actor import CLOSE_WITHIN, GroupActor
from .ray_report import ActorRun, RayReport
from .simulate import pacing

log = logging.getLogger("fedclient.simulate")

# After the stop, seconds the actors get to close their clients and report (they close within
# ray_actor.CLOSE_WITHIN); then they are killed, so Ctrl-C ends within 10 s.
STOP_WAIT = CLOSE_WITHIN + 1.5
# Actors of one node die within moments of each other: their deaths are gathered this long
# before the one line that reports the node's clients lost.
LOST_SETTLE = 1.0
NAMESPACE = "fedclient"


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the clients as Ray actors on this Ray cluster (no ADDRESS: what ray.init() finds "
        "or starts); needs pip install 'fedclient[ray]'",
    )
    p.add_argument(
        "--actors",
        type=int,
        help="with --ray: groups of clients, one Ray actor each (default: one per CPU of the cluster)",
    )
    p.add_argument(
        "--host",
        help="with --ray: the address the sandbox federation listens on, which every node must reach "
        "(default: the driver's Ray node address)",
    )


def import_ray() -> Any:
    """Ray, or one clear error naming the extra; no usage report is sent home from CI or a site."""
    require_extra("ray", "ray", what="simulate --ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail at once on an ADDRESS nothing listens on: ray.init() would retry it for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto":
        return
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--ray {address}: expected HOST:PORT of a Ray cluster's head (or auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout).close()
    except OSError as exc:
        raise FedClientError(
            f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc})"
        ) from None


def split(clients: int, groups: int) -> list[int]:
    """``clients`` into ``groups`` counts that differ by at most one."""
    base, extra = divmod(clients, groups)
    return [base + (1 if i < extra else 0) for i in range(groups)]


@dataclass
class _Member:
    """One actor as the driver sees it."""

    run: ActorRun
    handle: Any
    watch: asyncio.Task[None] | None = None


@dataclass
class _Fleet:
    """The actors of one simulation: watched for deaths, stopped and killed together."""

    ray: Any
    members: list[_Member]
    on_lost: Any  # async (client ids) -> None, or None
    stopping: bool = False
    _dying: dict[str, list[_Member]] = field(default_factory=dict)
    _announcing: set[asyncio.Task[None]] = field(default_factory=set)

    def live(self) -> list[_Member]:
        return [m for m in self.members if not m.run.lost]

    def watch(self, member: _Member) -> None:
        member.watch = asyncio.create_task(self._watch(member, member.handle.run.remote()))

    async def _watch(self, member: _Member, ref: Any) -> None:
        try:
            report = await ref
        except self.ray.exceptions.RayError as exc:
            if self.stopping:
                return  # killed by the stop after its grace: it has no report
            member.run.lost = True
            reason = getattr(exc, "cause", None) or exc
            member.run.error = str(reason).strip().splitlines()[0][:300] if str(reason).strip() else ""
            self._dying.setdefault(member.run.node_id, []).append(member)
            if len(self._dying[member.run.node_id]) == 1:
                task = asyncio.create_task(self._announce(member.run.node_id))
                self._announcing.add(task)
                task.add_done_callback(self._announcing.discard)
            return
        member.run.record(report)

    async def _announce(self, node_id: str) -> None:
        await asyncio.sleep(LOST_SETTLE)
        gone = self._dying.pop(node_id, [])
        clients = sum(m.run.clients for m in gone)
        alive = await asyncio.to_thread(
            lambda: any(n["NodeID"] == node_id and n["Alive"] for n in self.ray.nodes())
        )
        why = f"its actor died ({gone[0].run.error})" if alive else "the node died"
        rest = sum(m.run.clients for m in self.live())
        log.warning(
            "lost %d simulated client(s) on Ray node %s: %s; %d actor(s) gone, %d client(s) go on",
            clients,
            node_id,
            why,
            len(gone),
            rest,
        )
        if self.on_lost is not None:
            await self.on_lost([name for m in gone for name in m.run.client_names])

    async def stop(self) -> None:
        """Ask every live actor to stop, wait ``STOP_WAIT`` s for their reports, then kill them all."""
        deadline = time.monotonic() + STOP_WAIT
        live = [m for m in self.live() if m.watch is not None]
        # What each actor has done so far, kept in case it cannot close within STOP_WAIT.
        sofar = asyncio.gather(*(m.handle.stop.remote() for m in live), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            for member, report in zip(live, await asyncio.wait_for(sofar, STOP_WAIT), strict=True):
                if isinstance(report, dict):
                    member.run.record(report)
        watches = [m.watch for m in self.members if m.watch is not None]
        if watches:
            await asyncio.wait(watches, timeout=max(0.1, deadline - time.monotonic()))
        self.stopping = True
        for member in self.members:
            with contextlib.suppress(Exception):
                self.ray.kill(member.handle, no_restart=True)
        for watch in watches:
            watch.cancel()
        await asyncio.gather(*watches, *self._announcing, return_exceptions=True)


async def simulate_ray(
    ray: Any,
    package: Path,
    clients: int,
    work: Path,
    *,
    actors: int | None = None,
    rounds: int = 3,
    api_url: str | None = None,
    api_port: int | None = None,
    token: str | None = None,
    host: str | None = None,
    duration: float | None = None,
    round_timeout: float = 600.0,
    join_timeout: float = 600.0,
    callbacks: str = "callbacks",
    log_level: str = "WARNING",
    stop: asyncio.Event | None = None,
) -> RayReport:
    stop = stop or asyncio.Event()
    load_package_callbacks(package, callbacks)  # a broken callbacks module: one error, here
    refuse_privacy_policy(log_level)
    cpus = float(ray.cluster_resources().get("CPU", 0))
    groups = min(clients, actors or max(1, int(cpus)))
    archive = ray.put(build_package(package, work / "package.tgz").read_bytes())
    # Paced as one-process simulate paces them: the sandbox combiner in this driver gets every
    # actor's heartbeats.
    beat, sandbox_pacing = pacing(clients, api_url)
    federation = None
    fleet = _Fleet(ray, [], None)
    try:
        if api_url is None:
            from ...adapters.sandbox.federation import Federation

            where = host or ray.util.get_node_ip_address()
            federation = Federation(
                package,
                work / "server",
                clients,
                round_timeout=round_timeout,
                host=where,
                **sandbox_pacing,
            )
            await federation.start()
            api_url = federation.api_url
            fleet.on_lost = federation.lose_clients
        spec = GroupSpec(
            package,
            api_url,
            work,
            run_id=uuid.uuid4().hex[:6],
            api_port=api_port,
            token=token,
            callbacks=callbacks,
            log_level=log_level,
            heartbeat_interval=beat,
        )
        fleet.members = _spawn(ray, spec, split(clients, groups), 1.0 if groups <= cpus else 0.0, archive)
        report = RayReport(clients, groups, members=[m.run for m in fleet.members])
        t0 = time.monotonic()
        if not await _started(fleet, join_timeout, stop):
            return report
        if not await _joined(fleet, federation, join_timeout - (time.monotonic() - t0), stop):
            return report
        report.join_seconds = time.monotonic() - t0
        await asyncio.sleep(min(3.0, 0.5 + clients / 500))  # settle: the first heartbeats are out
        await _measure_idle(fleet)
        log.info("%d clients on %d actors connected in %.1f s", clients, groups, report.join_seconds)
        if federation is not None:
            report.rounds = await federation.run_until_stopped(rounds, stop)
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
        return report
    finally:
        await fleet.stop()
        if federation is not None:
            await federation.stop()


def _spawn(ray: Any, spec: GroupSpec, counts: list[int], cpus: float, archive: Any) -> list[_Member]:
    """One actor per count, placed by Ray (SPREAD); ``cpus`` reserved by each."""
    actor_class = ray.remote(GroupActor)
    members, first = [], 0
    for index, count in enumerate(counts):
        mine = replace(spec, first=first, count=count)
        handle = actor_class.options(
            name=f"sim-{spec.run_id}-{index}",
            namespace=NAMESPACE,
            max_restarts=0,
            num_cpus=cpus,
            scheduling_strategy="SPREAD",
        ).remote(mine, archive)
        names = [f"sim-{spec.run_id}-{i}" for i in range(first, first + count)]
        members.append(_Member(ActorRun(index, count, names), handle))
        first += count
    return members


async def _until(stop: asyncio.Event, work: Any, timeout: float) -> Any:
    """``work``'s result, or None when ``stop`` is set first; FedClientError after ``timeout``."""
    job = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({job, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if job in done:
            return job.result()
        if stopped in done:
            return None
        raise FedClientError(f"the Ray actors did not start within {timeout:.0f} s (not enough resources?)")
    finally:
        for each in (job, stopped):
            each.cancel()
        await asyncio.gather(job, stopped, return_exceptions=True)


async def _started(fleet: _Fleet, timeout: float, stop: asyncio.Event) -> bool:
    """Every actor placed and its clients built; False when stopped first."""
    started = await _until(
        stop,
        asyncio.gather(*(m.handle.start.remote() for m in fleet.members), return_exceptions=True),
        timeout,
    )
    if started is None:
        return False
    for member, where in zip(fleet.members, started, strict=True):
        if isinstance(where, BaseException):
            cause = getattr(where, "cause", None) or where
            raise FedClientError(f"Ray actor {member.run.index} failed to start: {_first_line(cause)}")
        member.run.node_id, member.run.pid = where["node_id"], where["pid"]
        member.run.scratch = where["scratch"]
        member.run.rss_before_mib = where["rss_before_mib"]
        fleet.watch(member)
    return True


async def _joined(fleet: _Fleet, federation: Any, timeout: float, stop: asyncio.Event) -> bool:
    """True once every client of the live actors is connected (and online at the sandbox)."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        live = fleet.live()
        if not live:
            raise FedClientError("every Ray actor died before its clients joined")
        statuses = await asyncio.gather(*(m.handle.status.remote() for m in live), return_exceptions=True)
        connected = 0
        for member, status in zip(live, statuses, strict=True):
            if isinstance(status, BaseException):
                continue  # its watcher reports the death
            if status["failed"]:
                raise FedClientError(f"a simulated client stopped before joining: {status['error']}")
            connected += status["connected"]
            member.run.rss_idle_mib = status["rss_mib"]
        wanted = sum(m.run.clients for m in live)
        online = federation is None or len(federation.combiner.online_clients()) >= wanted
        if connected >= wanted and online:
            return True
        if time.monotonic() > deadline:
            raise FedClientError(f"only {connected} of {wanted} clients connected within {timeout:.0f} s")
        await asyncio.sleep(0.5)
    return False


async def _measure_idle(fleet: _Fleet) -> None:
    live = fleet.live()
    statuses = await asyncio.gather(*(m.handle.status.remote() for m in live), return_exceptions=True)
    for member, status in zip(live, statuses, strict=True):
        if not isinstance(status, BaseException):
            member.run.rss_idle_mib = status["rss_mib"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"


def run_ray(args: argparse.Namespace, package: Path) -> int:
    """`simulate --ray`: connect to (or start) Ray, simulate, print and write the summary, disconnect."""
    import json
    import tempfile

    ray = import_ray()
    if args.actors is not None and args.actors < 1:
        raise ConfigError("--actors must be at least 1")
    if args.ray:
        check_address(args.ray)
    level = logging.getLevelName(args.log_level)
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="fedclient-ray-"))
        )
        ray.init(
            address=args.ray or None,
            namespace=NAMESPACE,
            include_dashboard=False,
            logging_level=level if isinstance(level, int) else logging.WARNING,
        )
        stack.callback(ray.shutdown)  # a Ray that ray.init() started here stops with it
        remove = None if args.work_dir else (lambda: shutil.rmtree(work, ignore_errors=True))
        report = asyncio.run(_with_signals(ray, args, package, work.resolve(), remove))
    print(report.format())
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 0


async def _with_signals(
    ray: Any, args: argparse.Namespace, package: Path, work: Path, before_exit: Any
) -> RayReport:
    """The simulation with SIGINT/SIGTERM stopping it; a second signal runs ``before_exit``, ends at once."""
    from ..signals import stop_on_signals

    stop = asyncio.Event()

    def outlook() -> str:
        return f"stopping the Ray actors of {args.clients} simulated clients (killed after {STOP_WAIT:.0f} s)"

    with stop_on_signals(stop, outlook, before_exit, logging.WARNING):
        return await simulate_ray(
            ray,
            package,
            args.clients,
            work,
            actors=args.actors,
            rounds=args.rounds,
            api_url=args.api_url,
            api_port=args.api_port,
            token=args.token,
            host=args.host,
            duration=args.duration,
            round_timeout=args.round_timeout,
            join_timeout=args.join_timeout,
            callbacks=args.callbacks,
            log_level=args.log_level,
            stop=stop,
        )
