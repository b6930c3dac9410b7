"""A group of simulated clients in one event loop: what `fedclient simulate` runs, and each Ray actor.

Every client is a full production lifecycle (assignment, TaskStream, heartbeats, model
transfers, status reports), built by the composition root (``app/container.py``). What the
group's clients share, to stay small: the controller client, one gRPC channel per combiner
(each call still carries its own client's metadata) and one callback trainer
(``adapters/trainers/callback_trainer.py``, the in-process client's) whose callbacks,
``<package>/callbacks.py`` loaded once, run on a thread pool of ``CALLBACK_THREADS``. Each
uses the package directory as its local package, so nothing is downloaded or unpacked N times.

The group knows nothing of where it runs: ``app/simulation/simulate.py`` runs one in its own loop;
a Ray actor runs one per actor and reports the same ``TaskTimes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dependency_injector import providers

from ...adapters.outbox_store import ProcessOutboxStore
from ...adapters.trainers.callback_trainer import callback_trainer_factory, load_package_callbacks
from ...domain.errors import ConfigError
from ...domain.lifecycle import Stopped
from ...domain.model import Assignment, AssignmentRequest
from ...domain.ports import Discovery
from ..container import build_container
from ..plan import build_plan
from ..policy import site_policy
from ..settings_load import load_settings
from .gate import CallGate, GatedConnector
from .scratch import GroupScratch, outbox_dir
from .task_timing import TaskClock, TaskTimes, TimedConnector, timed_factory

log = logging.getLogger("fedclient.simulate")

# Assignments in flight at once: a thousand clients asking the controller together overflow
# its connection pool and accept queue (PoolTimeout / ConnectTimeout, then backoff).
ASSIGN_CONCURRENCY = 16
# Threads the clients' callbacks share (a thousand clients must not mean a thousand threads).
CALLBACK_THREADS = min(32, (os.cpu_count() or 1) + 4)
CALLBACK_THREAD_NAME = "fedclient-sim-callbacks"
# On SIGINT/SIGTERM a running callback gets this long, not a real client's 120 s.
SHUTDOWN_GRACE = 5.0
# On a stop, seconds the outbox gets to deliver what it holds (a real client's 10 s keeps it for the
# next start; a simulated client's outbox lives in memory, and 5,000 of them took 21 s to stop).
SHUTDOWN_FLUSH = 1.0
# Seconds the clients get after the grace to close their sessions before they are abandoned.
CLOSE_SLACK = 1.0
# Heartbeats per second a group's clients send in all. One heartbeat costs ~1 ms of one core
# (grpc.aio, client and in-process sandbox combiner: ~1,000 a second saturate the event loop),
# so 5,000 clients at the real client's 2 s (2,500 a second) left no time for rounds and every
# call ran into its deadline. Simulated clients beat slower instead: N / this rate seconds
# apart, never less often than a combiner's online window allows (``heartbeat_interval``).
HEARTBEAT_RATE = 250.0
DEFAULT_HEARTBEAT_INTERVAL = 2.0  # the real client's default


def heartbeat_interval(clients: int, online_window: float | None = None) -> float:
    """Seconds between one simulated client's heartbeats when ``clients`` share a process.

    ``online_window``: the combiner counts a client online while its last heartbeat is
    younger than that (FEDn 0.33: 10 s); the interval stays under a third of it, so one late
    or missed beat does not take the client offline. None: the combiner is ours (the sandbox),
    whose window is widened to ``3 * interval`` instead.
    """
    paced = max(DEFAULT_HEARTBEAT_INTERVAL, clients / HEARTBEAT_RATE)
    if online_window is not None:
        paced = min(paced, max(DEFAULT_HEARTBEAT_INTERVAL, online_window / 3))
    return paced


@dataclass(frozen=True)
class GroupSpec:
    """Which clients a group runs and where they join; plain values, so a Ray actor can be given one."""

    package: Path
    api_url: str
    work: Path  # each client's work dir is work/client-<index>
    first: int = 0  # index of the group's first client (names are sim-<run_id>-<index>)
    count: int = 1
    run_id: str = "run"
    api_port: int | None = None
    token: str | None = None
    callbacks: str = "callbacks"
    log_level: str = "WARNING"
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL


class _ThrottledDiscovery:
    """The shared controller client, with at most ``limit`` assignment requests in flight."""

    def __init__(self, discovery: Discovery, stop: asyncio.Event, limit: int = ASSIGN_CONCURRENCY) -> None:
        self._discovery = discovery
        self._stop = stop
        self._slots = asyncio.Semaphore(limit)

    async def assign(self, request: AssignmentRequest) -> Assignment:
        async with self._slots:
            # Thousands wait here for their turn: once stopped, none of them asks any more
            # (the lifecycle looks at the stop only between its own tries).
            if self._stop.is_set():
                raise Stopped
            return await self._discovery.assign(request)


class ClientGroup:
    """``spec.count`` clients built from one container, started by ``start`` and ended by ``close``."""

    def __init__(self, spec: GroupSpec, stop: asyncio.Event, times: TaskTimes | None = None) -> None:
        self.spec = spec
        self.times = times if times is not None else TaskTimes()
        self._stop = stop
        self._runners: list[asyncio.Task[None]] = []
        self._container: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._loaded: Any = None
        self.gate = CallGate()
        self._scratch = GroupScratch(spec.work)
        self.clients_abandoned = 0  # still closing when close() stopped waiting
        self.stop_seconds: dict[str, float] = {}  # close()'s steps and how long each took

    @property
    def runners(self) -> list[asyncio.Task[None]]:
        return self._runners

    def load(self) -> None:
        """Import the package's callbacks: a broken module is one error now, not N later."""
        if self._loaded is None:
            self._loaded = load_package_callbacks(self.spec.package, self.spec.callbacks)

    async def start(self) -> None:
        """Build every client and start it (assignment and connection go on in the background)."""
        spec = self.spec
        self.load()
        base = load_settings(
            {
                "api_url": spec.api_url,
                "api_port": spec.api_port,
                "token": spec.token,
                "log_level": spec.log_level,
                "name": "sim",
                "shutdown_grace": SHUTDOWN_GRACE,
                "shutdown_flush": SHUTDOWN_FLUSH,
                "heartbeat_interval": spec.heartbeat_interval,
            }
        )
        # One container builds every client: the shared adapters (the controller client, the
        # channels) once, each client's lifecycle from the same providers.
        shared = self._container = build_container(base)
        shared.share_channels.override(providers.Object(True))
        shared.scratch.override(providers.Object(self._scratch))
        # A round's task calls take turns (app/simulation/gate.py); heartbeats never wait.
        connector = GatedConnector(await shared.connector(), self.gate)
        controller = await shared.discovery()
        discovery = _ThrottledDiscovery(controller, self._stop) if controller is not None else None
        self._pool = ThreadPoolExecutor(CALLBACK_THREADS, thread_name_prefix=CALLBACK_THREAD_NAME)
        trainers = callback_trainer_factory(self._loaded, self._pool)
        for index in range(spec.first, spec.first + spec.count):
            if self._stop.is_set():
                break  # stopped while the clients were being built: build no more
            name = f"sim-{spec.run_id}-{index}"
            settings = base.model_copy(
                update={
                    "name": name,
                    "client_id": name,
                    "work_dir": spec.work / f"client-{index}",
                    "local_package": spec.package,
                }
            )
            task_clock = TaskClock(self.times)
            plan = build_plan(settings)
            lifecycle = await shared.lifecycle(
                plan=plan,
                discovery=discovery,
                package_source=None,
                connector=TimedConnector(connector, task_clock, self.times),
                trainer_factory=timed_factory(trainers, task_clock),
                # No restart to survive; the group's clients share one directory for its models.
                outbox_store=ProcessOutboxStore(outbox_dir(spec.work), prefix=f"{index}-"),
                usage_probe=None,  # no telemetry from thousands of simulated clients
            )
            self._runners.append(asyncio.create_task(lifecycle.run(self._stop), name=f"sim-client-{index}"))
            if index % 50 == 49:
                await asyncio.sleep(0)  # let the first ones get going while the rest are built

    async def _closing(self, deadline: float) -> set[asyncio.Task[None]]:
        """Wait for the clients to end until ``deadline``, or until no callback runs any more.

        A client waiting for its turn on the combiner (``gate``) or for the outbox holds
        nothing the grace is for: once no callback is running, those still closing after
        ``CLOSE_SLACK`` are returned to be abandoned.
        """
        loop = asyncio.get_running_loop()
        pending = set(self._runners)
        idle_since: float | None = None
        while pending and loop.time() < deadline:
            done, pending = await asyncio.wait(pending, timeout=min(0.25, max(0.0, deadline - loop.time())))
            _retrieved(done)
            if busy_callback_threads(0.0):
                idle_since = None
            elif idle_since is None:
                idle_since = loop.time()
            elif loop.time() - idle_since >= CLOSE_SLACK:
                break
        return pending

    async def close(self, exiting: bool = True) -> int:
        """Stop every client, close the shared adapters; returns the callbacks abandoned still running.

        The clients get the grace for their running callbacks and ``CLOSE_SLACK`` more to close
        their sessions. Those still closing then are abandoned (``clients_abandoned``). When the
        caller ends the process next (``exiting``: simulate exits, the Ray driver kills the
        actor) they are neither waited for nor cancelled, and the shared channels are not
        closed under them: a simulated client keeps nothing worth the wait, and at 5,000
        clients cancelling them and closing the channels kept the event loop busy for 4.6 s
        of a stop. Otherwise (an error on its way to the user) they are cancelled and the
        channels closed, each bounded by ``CLOSE_SLACK``.

        The scratch the clients dropped at the stop stays in the trash (``scratch.SCRATCH``) for
        the caller, who removes it with the work dir once the event loop has ended: emptied
        here, in a thread contending for the GIL with the loop, 5,000 task dirs took 5.7 s.
        """
        steps = _Steps(self.stop_seconds)
        self._scratch.stopping()
        self._stop.set()
        if self._pool is not None:  # callbacks still queued fail now; the running ones get the grace
            self._pool.shutdown(wait=False, cancel_futures=True)
        closing = await self._closing(asyncio.get_running_loop().time() + SHUTDOWN_GRACE + CLOSE_SLACK)
        self.clients_abandoned = len(closing)
        if closing and not exiting:
            for runner in closing:
                runner.cancel()
            await asyncio.wait(closing, timeout=CLOSE_SLACK)
        steps.done("clients")
        if (not closing or not exiting) and self._container is not None:
            with contextlib.suppress(asyncio.TimeoutError):  # the shared channels, the controller client
                await asyncio.wait_for(self._container.shutdown_resources(), CLOSE_SLACK)
            steps.done("channels")
        return 0 if self._pool is None else busy_callback_threads()


class _Steps:
    """Seconds each step of a stop took, into ``into`` (the report's ``stop_s``)."""

    def __init__(self, into: dict[str, float]) -> None:
        self._into = into
        self._since = time.monotonic()

    def done(self, step: str) -> None:
        now = time.monotonic()
        self._into[step] = round(now - self._since, 3)
        self._since = now


def _retrieved(runners: set[asyncio.Task[None]]) -> None:
    for runner in runners:  # a client that failed while stopping: already counted in the stop's line
        if not runner.cancelled():
            runner.exception()


def busy_callback_threads(settle: float = 0.5) -> int:
    """Pool threads still running a callback: idle ones exit within ``settle`` s of the shutdown."""
    workers = [t for t in threading.enumerate() if t.name.startswith(CALLBACK_THREAD_NAME)]
    deadline = time.monotonic() + settle
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    return sum(worker.is_alive() for worker in workers)


def refuse_privacy_policy(log_level: str) -> None:
    """simulate's callbacks run without the privacy guard, so a site policy with privacy is refused."""
    if site_policy(load_settings({"log_level": log_level})).privacy is not None:
        raise ConfigError(
            "the site policy has a privacy section, which simulate does not enforce "
            "(its callbacks run without the privacy guard): use fedclient run or the sandbox"
        )


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS) or at its peak so far (VmHWM), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
