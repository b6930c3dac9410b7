"""The client's life: assign → package → connect → serve tasks, and recover when the network fails.

Written against the Protocols in ``domain.ports`` only, so it runs the same over
real adapters, in-memory fakes, or a simulator driving many clients. Every wait
watches the stop event, so SIGTERM ends the client promptly in any phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AuthError, ConfigError, FedClientError, PackageError, StreamEnded, TransientError
from .links import LinkHolder
from .model import (
    Assignment,
    AssignmentRequest,
    AssignmentStatus,
    CombinerAddress,
    Identity,
    PackageMode,
    Task,
)
from .model_files import DEFAULT_HELPER, choose_helper, model_suffix
from .observe import NULL_OBSERVER, Link, Observer, bind_log_context
from .package import ChecksumVerdict, Manifest, check_checksum
from .ports import (
    Clock,
    CombinerConnector,
    Discovery,
    PackageSource,
    PackageUnpacker,
    PreparedTrainer,
    Trainer,
    TrainerFactory,
)
from .retry import RetryConfig, call_with_retry, compute_backoff, may_retry
from .state import StateMachine
from .tasks import TaskRunner

log = logging.getLogger("fedclient.lifecycle")

# A connection that delivered tasks or stayed up this long resets the reconnect backoff.
HEALTHY_SESSION_SECONDS = 30.0


class Stopped(Exception):
    """The stop event was set while the lifecycle was waiting."""


@dataclass(frozen=True)
class ClientPlan:
    """Everything the lifecycle needs to know, decided by the app layer from settings."""

    identity: Identity
    work_dir: Path
    package_mode: PackageMode = PackageMode.REMOTE
    local_package_dir: Path | None = None
    preferred_combiner: str | None = None
    combiner: CombinerAddress | None = None  # set: attach directly, skip the controller
    package_checksum: str | None = None
    require_checksum: bool = False
    # Site policy: when non-empty, only packages with one of these SHA-256s are unpacked.
    allowed_packages: frozenset[str] = frozenset()
    heartbeat_interval: float = 2.0
    helper_type: str | None = None  # set: wins over the controller's (as `fedn client start -hp`)
    assign_retry: RetryConfig = field(default_factory=lambda: RetryConfig(initial=3.0, maximum=60.0))
    # An unreachable controller (or package download) is retried this often before the client gives up.
    unreachable_retry: RetryConfig = field(
        default_factory=lambda: RetryConfig(initial=2.0, maximum=60.0, max_attempts=30)
    )
    reconnect_retry: RetryConfig = field(default_factory=lambda: RetryConfig(initial=1.0, maximum=30.0))
    # After this many failed reconnects in a row, ask the controller again (it may move us).
    reassign_after: int = 10
    # How long a task waits for a lost combiner connection to come back before it fails.
    link_wait: float = 600.0


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
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    # ---------------------------------------------------------------- run --

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Join the federation and serve tasks until ``stop`` is set or a fatal error occurs."""
        self._stop = stop or asyncio.Event()
        self.links.wait_limit = self.plan.link_wait
        self.identity = self.plan.identity
        bind_log_context(client_id=self.identity.client_id)
        try:
            assignment = None
            if self.plan.combiner is None:
                assignment = await self.assign()
            else:
                self.combiner = self.plan.combiner
            manifest = await self.prepare_package()
            assert self.package_dir is not None
            trainer = self.trainer_factory(self.package_dir, manifest)
            if isinstance(trainer, PreparedTrainer):
                await self._until_stopped(trainer.prepare())
            if manifest.has("startup"):
                await self._startup(trainer)
            self.runner = TaskRunner(
                self.links,
                trainer,
                self.plan.work_dir / "tasks",
                self.state,
                self.clock,
                observer=self.observer,
                model_suffix=self._model_suffix(assignment.helper_type if assignment else None),
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

    async def assign(self) -> Assignment:
        if self.discovery is None:
            raise ConfigError("no controller configured: give --api-url, or --combiner and --combiner-port")
        request = AssignmentRequest(self.plan.identity, self.plan.package_mode, self.plan.preferred_combiner)
        waits = unreachable = 0
        while True:
            if self._stop.is_set():
                raise Stopped
            answer = await self.discovery.assign(request)
            if answer.status is AssignmentStatus.ASSIGNED:
                if answer.combiner is None:
                    raise ConfigError("the controller assigned no combiner address")
                self.combiner = answer.combiner
                if answer.client_id and answer.client_id != self.plan.identity.client_id:
                    self.identity = Identity(self.plan.identity.name, answer.client_id)
                    bind_log_context(client_id=answer.client_id)
                log.info("assigned to combiner %s", self.combiner.target)
                return answer
            if answer.status is AssignmentStatus.UNAUTHORIZED:
                raise AuthError(f"the controller refused the client: {answer.message or 'unauthorized'}")
            if answer.status is AssignmentStatus.UNMATCHED_CONFIG:
                raise ConfigError(f"the controller cannot take this client: {answer.message}")
            if answer.status is AssignmentStatus.TRY_AGAIN:
                waits += 1
                delay = compute_backoff(waits, self.plan.assign_retry)
                log.info("controller says try again (%s); waiting %.1f s", answer.message, delay)
            else:
                unreachable += 1
                if not may_retry(unreachable, self.plan.unreachable_retry):
                    raise TransientError(
                        f"the controller stayed unreachable after {unreachable} tries: {answer.message}"
                    )
                delay = compute_backoff(unreachable, self.plan.unreachable_retry)
                log.warning(
                    "controller unreachable (%s); retry %d in %.1f s", answer.message, unreachable, delay
                )
            await self._pause(delay)

    # ------------------------------------------------------------ package --

    async def prepare_package(self) -> Manifest:
        if self.plan.package_mode is PackageMode.LOCAL:
            if self.plan.local_package_dir is None:
                raise PackageError("local package mode needs a package directory")
            self.package_dir = self.plan.local_package_dir
            return self.unpacker.load_manifest(self.package_dir)
        source = self.package_source
        if source is None:
            raise ConfigError("remote package mode needs a controller to download the package from")
        download_dir = self.plan.work_dir / "download"
        download_dir.mkdir(parents=True, exist_ok=True)

        async def fetch() -> tuple[Path, str | None]:
            # The expected hash first: a package is judged against what the server said
            # before the download, not against whatever it says after it.
            expected = await source.checksum()
            return await source.download(download_dir), expected

        archive, server_sum = await call_with_retry(
            fetch, self.plan.unreachable_retry, self._pause, "downloading the compute package"
        )
        try:
            actual = self.verify_package(archive, server_sum)
            self.package_dir = self.unpacker.unpack(archive, self.plan.work_dir / "packages" / actual[:16])
        finally:
            archive.unlink(missing_ok=True)  # refused or unpacked, the download is not kept
        return self.unpacker.load_manifest(self.package_dir)

    def verify_package(self, archive: Path, server_sum: str | None) -> str:
        """Check the archive's SHA-256 against the server, the pin and the site allowlist; return it."""
        actual = self.unpacker.sha256(archive)
        self.checksum_verdict = check_checksum(archive.name, actual, server_sum, self.plan.package_checksum)
        allowed = self.plan.allowed_packages
        if allowed and actual not in allowed:
            raise PackageError(
                f"package '{archive.name}' (sha256 {actual}) is not in the site policy's allowlist "
                f"of {len(allowed)} package(s); refused before unpacking"
            )
        if self.checksum_verdict is ChecksumVerdict.UNVERIFIED and not allowed:
            if self.plan.require_checksum:
                raise PackageError(
                    f"package '{archive.name}' could not be verified: the server gave no checksum "
                    "and none is configured"
                )
            log.warning(
                "package %s is not verified: no checksum from the server or the settings", archive.name
            )
        else:
            log.info("package %s verified (sha256 %s)", archive.name, actual)
        return actual

    async def _startup(self, trainer: Trainer) -> None:
        """FEDn runs a package's `startup` entry point once before serving (e.g. to fetch data)."""
        log.info("running the package's startup entry point")
        try:
            await trainer.startup()
        except FedClientError as exc:
            raise PackageError(f"the package's startup entry point failed: {exc}") from None

    # -------------------------------------------------------------- serve --

    async def serve(self) -> None:
        """Keep a task stream open, reconnecting with backoff, until stop is set."""
        assert self.runner is not None and self.combiner is not None and self.identity is not None
        queue: asyncio.Queue[Task] = asyncio.Queue()
        worker = asyncio.create_task(self._work(queue), name="fedclient-worker")
        failures = 0
        try:
            while not self._stop.is_set():
                outcome = await self._session(queue, worker)
                if outcome == "stopped":
                    return
                failures = 0 if outcome == "healthy" else failures + 1
                if failures and failures % self.plan.reassign_after == 0:
                    await self._reassign(failures)
                delay = compute_backoff(max(failures, 1), self.plan.reconnect_retry)
                log.info("reconnecting to %s in %.1f s", self.combiner.target, delay)
                await self._pause(delay)
        except Stopped:
            return
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await self._close_link()

    async def _reassign(self, failures: int) -> None:
        """Ask the controller again after a long outage; keep the old combiner if that fails too."""
        if self.discovery is None or self.plan.combiner is not None:
            return
        assert self.combiner is not None
        log.warning(
            "combiner %s failed %d times in a row; asking the controller again",
            self.combiner.target,
            failures,
        )
        try:
            await self.assign()
        except AuthError:
            raise
        except FedClientError as exc:
            log.warning(
                "the controller could not reassign us (%s); keep trying %s", exc, self.combiner.target
            )

    async def _session(self, queue: asyncio.Queue[Task], worker: asyncio.Task[None]) -> str:
        """One connection: returns 'stopped', 'healthy' (got tasks or lasted) or 'failed'."""
        assert self.combiner is not None and self.identity is not None
        target = self.combiner.target
        self.observer.link(Link.CONNECTING, target)
        try:
            link = await self.connector.connect(self.combiner, self.identity)
        except TransientError as exc:
            log.warning("cannot connect to combiner %s: %s", target, exc)
            self.observer.link(Link.DISCONNECTED, target)
            return "failed"
        except BaseException:
            self.observer.link(Link.DISCONNECTED, target)
            raise
        self.links.set(link)
        self.observer.link(Link.CONNECTED, target)
        self.connects += 1
        received_before, opened = self.tasks_received, self.clock.monotonic()
        reader = asyncio.create_task(self._read(queue), name="fedclient-reader")
        beats = asyncio.create_task(self._heartbeats(), name="fedclient-heartbeat")
        stopper: asyncio.Task[object] = asyncio.create_task(self._stop.wait(), name="fedclient-stop")
        try:
            done, _ = await asyncio.wait(
                {reader, beats, stopper, worker}, return_when=asyncio.FIRST_COMPLETED
            )
            if stopper in done:
                return "stopped"
            if worker in done:
                if worker.cancelled():
                    raise FedClientError("the task worker was cancelled unexpectedly")
                raise worker.exception() or FedClientError("the task worker ended unexpectedly")
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
            lasted = self.clock.monotonic() - opened
            healthy = self.tasks_received > received_before or lasted >= HEALTHY_SESSION_SECONDS
            return "healthy" if healthy else "failed"
        finally:
            for helper in (reader, beats, stopper):
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await helper
            await self._close_link()
            self.observer.link(Link.DISCONNECTED, target)

    async def _read(self, queue: asyncio.Queue[Task]) -> None:
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
            await queue.put(task)
        raise StreamEnded("the combiner closed the task stream")

    async def _work(self, queue: asyncio.Queue[Task]) -> None:
        assert self.runner is not None
        while True:
            task = await queue.get()
            await self.runner.handle(task)

    async def _heartbeats(self) -> None:
        misses = 0
        while True:
            link = self.links.current()
            try:
                if link is None:
                    raise TransientError("not connected")
                await link.heartbeat()
                self.observer.heartbeat(True)
                if misses:
                    log.info("heartbeat back after %d misses", misses)
                misses = 0
            except TransientError as exc:
                misses += 1
                self.observer.heartbeat(False)
                log.warning("heartbeat %d missed: %s", misses, exc)
            await self.clock.sleep(self.plan.heartbeat_interval)

    async def _close_link(self) -> None:
        link = self.links.take()
        if link is not None:
            with contextlib.suppress(Exception):
                await link.close()


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
