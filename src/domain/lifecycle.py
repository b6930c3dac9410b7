"""The client's life: assign → package → connect → serve tasks, and recover when the network fails.

Holds the plan (``ClientPlan``), the assignment, the serve loop with its reconnects and
reassignments, heartbeats and telemetry; how the compute package gets ready is
``domain.package_setup``, which ``Lifecycle.prepare_package`` runs. Written against the
Protocols in ``domain.ports`` only, so it runs the same over real adapters, in-memory
fakes, or a simulator driving many clients. Every wait watches the stop event, so
SIGTERM ends the client promptly in any phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from .credentials import Credentials, RefreshingLink
from .errors import AuthError, ConfigError, FedClientError, StreamEnded, TransientError
from .inbox import TaskInbox
from .links import LinkHolder
from .model import (
    Assignment,
    AssignmentRequest,
    AssignmentStatus,
    CombinerAddress,
    Identity,
    Task,
)
from .model_files import DEFAULT_HELPER, choose_helper, model_suffix
from .observe import NULL_OBSERVER, Link, Observer, bind_log_context
from .outbox import Outbox, OutboxStore
from .package import ChecksumVerdict, Manifest
from .package_setup import PackageSetup
from .plan import ClientPlan
from .ports import (
    Clock,
    CombinerConnector,
    Discovery,
    HelperAwareTrainer,
    Ids,
    LeftoverSweeper,
    PackageCache,
    PackageSource,
    PackageUnpacker,
    PreparedTrainer,
    Random,
    Scratch,
    ShutdownHook,
    TrainerFactory,
)
from .retry import attempt_of, giving_up, may_retry, next_delay
from .state import StateMachine
from .tasks import TaskRunner
from .usage import UsageMeter, UsageProbe
from .wording import no_controller_message

__all__ = ["ClientPlan", "Lifecycle", "Stopped"]  # ClientPlan is domain.plan's, imported here by many

log = logging.getLogger("fedclient.lifecycle")

# A connection that delivered tasks or stayed up this long resets the reconnect backoff.
HEALTHY_SESSION_SECONDS = 30.0


class Stopped(Exception):
    """The stop event was set while the lifecycle was waiting."""


@dataclass
class Lifecycle:
    plan: ClientPlan
    discovery: Discovery | None
    package_source: PackageSource | None
    unpacker: PackageUnpacker
    connector: CombinerConnector
    trainer_factory: TrainerFactory
    clock: Clock
    observer: Observer = NULL_OBSERVER
    usage_probe: UsageProbe | None = None  # None: heartbeats carry no usage, no telemetry is sent
    state: StateMachine = field(default_factory=StateMachine)
    identity: Identity | None = None
    combiner: CombinerAddress | None = None
    package_dir: Path | None = None
    checksum_verdict: ChecksumVerdict | None = None
    helper_type: str = DEFAULT_HELPER
    connects: int = 0
    tasks_received: int = 0
    runner: TaskRunner | None = None
    links: LinkHolder = field(default_factory=LinkHolder)
    outbox: Outbox | None = None
    inbox: TaskInbox | None = None
    # The token shared by every channel; the adapters get the same object from the container.
    credentials: Credentials = field(default_factory=lambda: Credentials(None))
    # Run once on the way out, after the last task and before the channels close.
    shutdown_hooks: list[ShutdownHook] = field(default_factory=list)
    reassignments: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _drained: asyncio.Event = field(default_factory=asyncio.Event)
    _running: Task | None = field(default=None, init=False)  # the task the worker is on
    _outage: tuple[int, float] | None = None  # (connect attempts, since) while the combiner is away
    # One meter per loop, made at start, so the first CPU figure covers the time since then.
    _beat_meter: UsageMeter | None = field(default=None, init=False)
    _telemetry_meter: UsageMeter | None = field(default=None, init=False)
    # The machine's side, behind ports (given by name; the app's container wires the real ones).
    package_cache: PackageCache = field(kw_only=True)  # the package kept from the last start
    outbox_store: OutboxStore = field(kw_only=True)  # where finished results wait for delivery
    scratch: Scratch = field(kw_only=True)  # each task's private directory
    ids: Ids = field(kw_only=True)  # model update ids, outbox keys
    random: Random = field(kw_only=True)  # backoff jitter

    # ---------------------------------------------------------------- run --

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Join the federation and serve tasks until ``stop`` is set or a fatal error occurs."""
        self._stop = stop or asyncio.Event()
        self.links.wait_limit = self.plan.link_wait
        self.identity = self.plan.identity
        bind_log_context(client_id=self.identity.client_id)
        if self.usage_probe is not None:
            self._beat_meter, self._telemetry_meter = (
                UsageMeter(self.usage_probe),
                UsageMeter(self.usage_probe),
            )
        try:
            if isinstance(self.trainer_factory, LeftoverSweeper):
                # First of all, so before the package is unpacked over a directory where
                # entry points of a killed client may still run (docs/SECURITY.md).
                await asyncio.to_thread(self.trainer_factory.sweep)
            assignment = None
            if self.plan.combiner is None:
                assignment = await self.assign()
            else:
                self.combiner = self.plan.combiner
            manifest = await self.prepare_package()
            assert self.package_dir is not None
            suffix = self._model_suffix(assignment.helper_type if assignment else None)
            trainer = self.trainer_factory(self.package_dir, manifest)
            if isinstance(trainer, HelperAwareTrainer):
                trainer.use_helper(self.helper_type)
            if isinstance(trainer, PreparedTrainer):
                await self._until_stopped(trainer.prepare())
            if manifest.has("startup"):
                await self._package_setup().startup(trainer)
            self.outbox = Outbox(
                self.outbox_store,
                self.links,
                self.clock,
                self.plan.delivery_retry,
                settle=self.plan.outbox_settle,
                ids=self.ids,
                random=self.random,
            )
            await self.outbox.load()
            self.shutdown_hooks.append(self.flush_outbox)
            self.runner = TaskRunner(
                self.links,
                trainer,
                self.plan.work_dir / "tasks",
                self.state,
                self.clock,
                outbox=self.outbox,
                scratch=self.scratch,
                ids=self.ids,
                random=self.random,
                delivery_retry=self.plan.delivery_retry,
                observer=self.observer,
                client_id=lambda: (self.identity or self.plan.identity).client_id,
                model_suffix=suffix,
            )
            await self.serve()
        except Stopped:
            log.info("stopped before joining the federation")

    async def _pause(self, seconds: float) -> None:
        if await _wait(self._stop, self.clock.sleep(seconds)):
            raise Stopped

    async def _until_stopped(self, work: Awaitable[None]) -> None:
        """Run ``work`` (e.g. an env build that takes minutes), cancelling it if stop is set."""
        job = asyncio.ensure_future(work)
        stopped = await _wait(self._stop, job)
        if stopped:
            raise Stopped
        job.result()

    def _model_suffix(self, from_controller: str | None) -> str:
        """Model files are named as the stock client's helper names them (scripts may key on it)."""
        self.helper_type = choose_helper(self.plan.helper_type, from_controller)
        suffix = model_suffix(self.helper_type)
        if suffix is None:
            log.warning("unknown helper_type '%s'; model files are named *.npz", self.helper_type)
            return ".npz"
        return suffix

    # ------------------------------------------------------------- assign --

    async def assign(self, budget: int | None = None) -> Assignment | None:
        """Ask the controller for a combiner until it gives one or says no.

        With a ``budget`` (re-assignment) at most that many requests are made and None
        is returned when they run out, so the caller can go back to its old combiner.
        Without one, "try again" is waited out (FEDn says it while it is starting) and
        an unreachable controller is retried ``unreachable_retry`` times.
        """
        if self.discovery is None:
            raise ConfigError(no_controller_message())
        request = AssignmentRequest(self.plan.identity, self.plan.package_mode, self.plan.preferred_combiner)
        asks = waits = unreachable = 0
        started = self.clock.monotonic()
        while True:
            if self._stop.is_set():
                raise Stopped
            asks += 1
            seen = self.credentials.version
            answer = await self.discovery.assign(request)
            if answer.status is AssignmentStatus.ASSIGNED:
                if answer.combiner is None:
                    raise ConfigError("the controller assigned no combiner address")
                self.combiner = answer.combiner
                if answer.client_id and answer.client_id != self.plan.identity.client_id:
                    self.identity = Identity(self.plan.identity.name, answer.client_id)
                    bind_log_context(client_id=answer.client_id)
                if asks > 1:
                    log.info(
                        "controller answered after %d tries, %.0f s",
                        asks,
                        self.clock.monotonic() - started,
                    )
                log.info("assigned to combiner %s", self.combiner.target)
                return answer
            if answer.status is AssignmentStatus.UNAUTHORIZED:
                refused = AuthError(
                    f"the controller refused the client: {answer.message or 'unauthorized'}",
                    refreshable=answer.refreshable,
                )
                if await self.credentials.renew(seen, refused):
                    asks -= 1  # the same question again, now with the new token
                    continue
                raise self.credentials.final(refused)
            if answer.status is AssignmentStatus.UNMATCHED_CONFIG:
                raise ConfigError(f"the controller cannot take this client: {answer.message}")
            # With a budget (re-assignment) the asks are bounded by it; otherwise "try again" is
            # waited out for as long as it takes and only unreachable tries have a limit.
            if answer.status is AssignmentStatus.TRY_AGAIN:
                waits += 1
                delay = next_delay(waits, self.plan.assign_retry, answer.retry_after, self.random.uniform())
                tries = f"attempt {asks} of {budget}" if budget is not None else f"attempt {asks}"
                log.info("controller says try again (%s); %s, waiting %.1f s", answer.message, tries, delay)
            else:
                unreachable += 1
                retry = self.plan.unreachable_retry
                if not may_retry(unreachable, retry):
                    raise TransientError(
                        f"the controller stayed unreachable after {unreachable} tries: {answer.message}"
                    )
                delay = next_delay(unreachable, retry, answer.retry_after, self.random.uniform())
                if budget is not None:
                    tries, outlook = f"attempt {asks} of {budget}", ""
                else:
                    tries = attempt_of(unreachable, retry)
                    outlook = giving_up(unreachable, delay, retry, "it stays unreachable")
                log.warning(
                    "controller unreachable (%s); %s, retrying in %.1f s%s",
                    answer.message,
                    tries,
                    delay,
                    outlook,
                )
            if budget is not None and asks >= budget:
                return None
            await self._pause(delay)

    # ------------------------------------------------------------ package --

    async def prepare_package(self) -> Manifest:
        """Get the compute package ready (``domain.package_setup``); sets package_dir and checksum_verdict."""
        setup = self._package_setup()
        try:
            return await setup.prepare()
        finally:
            self.package_dir, self.checksum_verdict = setup.package_dir, setup.checksum_verdict

    def _package_setup(self) -> PackageSetup:
        """Built at each use from the current fields (tests swap the unpacker after construction)."""
        return PackageSetup(
            self.plan,
            self.package_source,
            self.unpacker,
            self.credentials,
            self._pause,
            cache=self.package_cache,
            clock=self.clock,
            random=self.random,
            package_dir=self.package_dir,
            checksum_verdict=self.checksum_verdict,
        )

    # -------------------------------------------------------------- serve --

    async def serve(self) -> None:
        """Keep a task stream open, reconnecting with backoff, until stopped (then drain and flush)."""
        assert self.runner is not None and self.combiner is not None and self.identity is not None
        queue = self.inbox = TaskInbox(
            self.runner.outbox.watch, self.plan.task_queue_limit, wall=self.clock.time
        )
        self._idle.set()
        self._drained.clear()
        worker = asyncio.create_task(self._work(queue), name="fedclient-worker")
        watcher = asyncio.create_task(self._watch_stop(), name="fedclient-stop-watch")
        failures = 0
        self._outage = (0, self.clock.monotonic())
        try:
            while not self._drained.is_set():
                seen = self.credentials.version
                try:
                    outcome = await self._session(queue, worker)
                except AuthError as exc:
                    if await self.credentials.renew(seen, exc):
                        log.info("reconnecting to %s with the refreshed token", self.combiner.target)
                        continue
                    raise self.credentials.final(exc) from None
                if outcome == "stopped":
                    return
                queue.drop_all("the connection to the combiner was lost before the task started")
                failures = 0 if outcome == "healthy" else failures + 1
                if self._outage is None:  # the connection is gone: the outage starts now
                    self._outage = (0, self.clock.monotonic())
                if failures and failures % self.plan.reassign_after == 0:
                    await self._reassign(failures)
                delay = next_delay(max(failures, 1), self.plan.reconnect_retry, rand=self.random.uniform())
                log.info(
                    "reconnecting to %s in %.1f s (attempt %d)", self.combiner.target, delay, failures + 1
                )
                if await _wait(self._drained, self.clock.sleep(delay)):
                    return
        except Stopped:
            return
        finally:
            watcher.cancel()
            await self._finish(worker, watcher)

    async def _finish(self, worker: asyncio.Task[None], watcher: asyncio.Task[None]) -> None:
        """Cancel what still runs, run the shutdown hooks, close the channel: every step bounded."""
        for task in (watcher, worker):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
                await asyncio.wait_for(task, 10.0)
        for hook in self.shutdown_hooks:
            try:
                await asyncio.wait_for(hook(), self.plan.flush_timeout)
            except TimeoutError:
                log.warning("shutdown hook %s did not finish in %.0f s", hook, self.plan.flush_timeout)
            except Exception:  # a failing hook must not keep the client from closing
                log.exception("shutdown hook %s failed", hook)
        await self._close_link()

    def stop_outlook(self) -> str:
        """What stopping now waits for, in words (the app's stop line says it; the running task's kind)."""
        running = self._running
        if running is None or self._idle.is_set():
            return "no task is running"
        return f"waiting for the running {running.kind.value} task, up to {self.plan.shutdown_grace:.0f} s"

    async def _watch_stop(self) -> None:
        """On stop: let the running task finish within the grace period, then declare the client drained."""
        await self._stop.wait()
        log.debug("stopping: no new tasks; %s", self.stop_outlook())
        if not self._idle.is_set():
            grace = self.plan.shutdown_grace
            if not await _wait(self._idle, self.clock.sleep(grace)):
                log.warning("the running task did not finish within %.0f s; cancelling it", grace)
        self._drained.set()

    async def _reassign(self, failures: int) -> None:
        """Ask the controller again after a long outage, with a bounded budget; else keep the old combiner."""
        if self.discovery is None or self.plan.combiner is not None:
            return
        old = self.combiner
        assert old is not None
        budget = self.plan.reassign_budget
        log.warning(
            "combiner %s failed %d times in a row; asking the controller for a combiner (up to %d times)",
            old.target,
            failures,
            budget,
        )
        self.reassignments += 1
        try:
            answer = await self.assign(budget=budget)
        except (AuthError, Stopped):
            raise
        except FedClientError as exc:
            log.warning("the controller could not reassign us (%s); back to %s", exc, old.target)
            self.combiner = old
            return
        if answer is None:
            log.warning("the controller gave no combiner in %d tries; back to %s", budget, old.target)
            self.combiner = old
        elif self.combiner != old:
            assert self.combiner is not None
            log.warning("the controller moved us from combiner %s to %s", old.target, self.combiner.target)
            self._outage = None
        else:
            log.info("the controller kept us on combiner %s", old.target)

    async def flush_outbox(self, seconds: float | None = None) -> None:
        """Deliver what the outbox holds, bounded in time (the graceful-shutdown hook)."""
        if self.outbox is None or not self.outbox.pending() or self.links.current() is None:
            return
        limit = self.plan.shutdown_flush if seconds is None else seconds
        tally = await self.outbox.flush_within(limit)
        if tally is None:
            log.warning(
                "outbox: %d result(s) not delivered within %.0f s; kept for the next start",
                len(self.outbox.pending()),
                limit,
            )

    async def _session(self, queue: TaskInbox, worker: asyncio.Task[None]) -> str:
        """One connection: returns 'stopped', 'healthy' (got tasks or lasted) or 'failed'."""
        assert self.combiner is not None and self.identity is not None
        target = self.combiner.target
        self.observer.link(Link.CONNECTING, target)
        if self._outage is not None:
            self._outage = (self._outage[0] + 1, self._outage[1])
        try:
            link = await self.connector.connect(self.combiner, self.identity)
        except TransientError as exc:
            log.warning("cannot connect to combiner %s: %s", target, exc)
            self.observer.link(Link.DISCONNECTED, target)
            return "failed"
        except BaseException:
            self.observer.link(Link.DISCONNECTED, target)
            raise
        self.links.set(RefreshingLink(link, self.credentials))
        self.observer.link(Link.CONNECTED, target)
        self.connects += 1
        if self._outage is not None:
            tries, since = self._outage
            if self.connects > 1 or tries > 1:
                log.info(
                    "combiner %s %s after %d %s, %.0f s",
                    self.combiner.target,
                    "back" if self.connects > 1 else "reached",
                    tries,
                    "try" if tries == 1 else "tries",
                    self.clock.monotonic() - since,
                )
            self._outage = None
        received_before, opened = self.tasks_received, self.clock.monotonic()
        reader = asyncio.create_task(self._read(queue), name="fedclient-reader")
        beats = asyncio.create_task(self._heartbeats(), name="fedclient-heartbeat")
        drained = asyncio.create_task(self._drained.wait(), name="fedclient-drained")
        stopping = asyncio.create_task(self._stop.wait(), name="fedclient-stop")
        assert self.outbox is not None
        flusher = asyncio.create_task(self.outbox.flush(), name="fedclient-outbox")
        watched: set[asyncio.Future[object]] = {reader, beats, drained, stopping, worker}  # type: ignore[arg-type]
        outcome = "failed"
        # Telemetry is informative: it never ends a session, so it is not waited on below.
        telemetry = asyncio.create_task(self._telemetry(), name="fedclient-telemetry")
        try:
            while True:
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if drained in done:
                    outcome = "stopped"
                    return outcome
                if stopping in done:
                    # Stop taking tasks; heartbeats go on while the running task finishes.
                    watched -= {stopping, reader}
                    reader.cancel()
                    done -= {stopping, reader}
                    if not done:
                        continue
                if worker in done:
                    if worker.cancelled():
                        raise FedClientError("the task worker was cancelled unexpectedly")
                    died = worker.exception() or FedClientError("the task worker ended unexpectedly")
                    if isinstance(died, AuthError):  # the task already renewed once: final
                        raise self.credentials.final(died)
                    raise died
                for finished in (beats, reader):
                    error = finished.exception() if finished in done else None
                    if error is not None and not isinstance(error, TransientError):
                        raise error
                if reader in done:
                    lost = reader.exception()
                    if isinstance(lost, StreamEnded):
                        log.warning("combiner %s closed the task stream", self.combiner.target)
                    else:
                        log.warning("task stream to %s lost: %s", self.combiner.target, lost)
                if beats in done:
                    log.warning("connection to %s lost: %s", self.combiner.target, beats.exception())
                lasted = self.clock.monotonic() - opened
                healthy = self.tasks_received > received_before or lasted >= HEALTHY_SESSION_SECONDS
                return "healthy" if healthy else "failed"
        finally:
            for helper in (reader, beats, drained, stopping, telemetry, flusher):
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await helper
            if outcome != "stopped":  # on stop, the shutdown hooks still get the open link
                await self._close_link()  # (reports the link down to the observer)

    async def _read(self, queue: TaskInbox) -> None:
        link = self.links.current()
        if link is None:
            raise TransientError("not connected to a combiner")
        async for task in link.tasks():
            self.tasks_received += 1
            log.info(
                "received %s task for model %s (session %s)",
                task.kind.value,
                task.model_id,
                task.session_id or "-",
            )
            queue.admit(task)
        raise StreamEnded("the combiner closed the task stream")

    async def _work(self, queue: TaskInbox) -> None:
        assert self.runner is not None
        while True:
            task = await queue.get()
            if self._stop.is_set():
                log.warning(
                    "stopping: %s task for model %s not started (correlation %s)",
                    task.kind.value,
                    task.model_id,
                    task.correlation_id,
                )
                continue
            self._idle.clear()
            self._running = task
            try:
                await self.runner.handle(task)
            finally:
                self._running = None
                self._idle.set()

    async def _heartbeats(self) -> None:
        """Beat every interval; ``heartbeat_miss_limit`` misses in a row end the session (reconnect)."""
        misses = 0
        limit = self.plan.heartbeat_miss_limit
        meter = self._beat_meter
        while True:
            link = self.links.current()
            try:
                if link is None:
                    raise TransientError("not connected")
                await link.heartbeat(meter.sample() if meter is not None else None)
                self.observer.heartbeat(True)
                if misses:
                    log.info("heartbeat back after %d misses", misses)
                misses = 0
            except TransientError as exc:
                misses += 1
                self.observer.heartbeat(False)
                if misses >= limit:
                    raise TransientError(f"{misses} heartbeats in a row missed (last: {exc})") from None
                log.warning("heartbeat %d/%d missed: %s", misses, limit, exc)
            await self.clock.sleep(self.plan.heartbeat_interval)

    async def _telemetry(self) -> None:
        """Send CPU and memory use now and then every telemetry_interval, while connected."""
        meter, failures = self._telemetry_meter, 0
        if meter is None or self.plan.telemetry_interval <= 0:
            return
        while True:
            usage = meter.sample()
            link = self.links.current()
            if link is not None and not usage.empty:
                try:
                    await link.send_telemetry(usage)
                    failures = 0
                except AuthError:
                    return  # the heartbeat sees the same refusal and ends the session
                except FedClientError as exc:
                    failures += 1
                    if failures == 1:
                        log.warning("telemetry not sent: %s", exc)
            await self.clock.sleep(self.plan.telemetry_interval)

    async def _close_link(self) -> None:
        link = self.links.take()
        if link is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.close(), 10.0)
            self.observer.link(Link.DISCONNECTED, self.combiner.target if self.combiner else None)


async def _wait(stop: asyncio.Event, sleeper: Awaitable[None]) -> bool:
    """Sleep unless stop is set first; True if stopped."""
    sleep_task = asyncio.ensure_future(sleeper)
    stop_task = asyncio.create_task(stop.wait())
    done, pending = await asyncio.wait({sleep_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return stop_task in done
