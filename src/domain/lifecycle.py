"""The client's life, in order: sweep → assign → prepare the package → make the trainer → serve.

``Lifecycle`` only orchestrates its parts, which the app's container builds and hands in:
the assigner (``domain.assigner``), the package setup (``domain.package_setup``), the
trainer factory, the task runner's factory (``domain.tasks``), the outbox
(``domain.outbox``) and the session supervisor (``domain.session``: connections,
heartbeats, reconnects, re-assignment, stop and shutdown hooks). Written against the
Protocols in ``domain.ports`` only, so it runs the same over real adapters, in-memory
fakes, or a simulator driving many clients. Every wait watches the stop event, so
SIGTERM ends the client promptly in any phase.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .assigner import Assigned, Assigner
from .connection import Where
from .credentials import Credentials
from .inbox import TaskInbox
from .links import LinkHolder
from .model import CombinerAddress, Identity
from .model_files import DEFAULT_HELPER, choose_helper, model_suffix
from .observe import bind_log_context
from .outbox import Outbox
from .package import ChecksumVerdict
from .package_setup import PackageSetup, PreparedPackage
from .plan import ClientPlan
from .ports import HelperAwareTrainer, LeftoverSweeper, PreparedTrainer, ShutdownHook, Trainer, TrainerFactory
from .session import Supervisor
from .state import StateMachine
from .stopping import Stopped, until_stopped
from .tasks import TaskRunner

__all__ = ["ClientPlan", "Lifecycle", "Stopped"]  # ClientPlan is domain.plan's, imported here by many

log = logging.getLogger("fedclient.lifecycle")

# Makes the task runner once the trainer is known: (trainer=..., model_suffix=...) -> TaskRunner.
RunnerFactory = Callable[..., TaskRunner]


@dataclass
class Lifecycle:
    plan: ClientPlan
    assigner: Assigner
    package: PackageSetup
    trainer_factory: TrainerFactory
    make_runner: RunnerFactory
    supervisor: Supervisor
    outbox: Outbox  # where finished results wait for delivery (loaded at start)
    state: StateMachine  # the task runner's states (idle, training, ...)
    prepared: PreparedPackage | None = None
    helper_type: str = DEFAULT_HELPER
    runner: TaskRunner | None = field(default=None, init=False)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Join the federation and serve tasks until ``stop`` is set or a fatal error occurs."""
        stop = stop or asyncio.Event()
        bind_log_context(client_id=self.plan.identity.client_id)
        self.supervisor.start(stop)
        try:
            if isinstance(self.trainer_factory, LeftoverSweeper):
                # First of all, so before the package is unpacked over a directory where
                # entry points of a killed client may still run (docs/SECURITY.md).
                await asyncio.to_thread(self.trainer_factory.sweep)
            assigned = None
            if self.plan.combiner is None:
                assigned = await self.assigner.assign(stop)
                assert assigned is not None  # without a budget: assigned, or an error
            self.supervisor.where = self._where(assigned)
            prepared = self.prepared = await self.package.prepare(stop)
            suffix = self._model_suffix(assigned.answer.helper_type if assigned else None)
            trainer = await self._trainer(prepared, stop)
            await self.outbox.load()
            self.shutdown_hooks.append(self.flush_outbox)
            self.runner = self.make_runner(trainer=trainer, model_suffix=suffix)
            await self.supervisor.serve(self.runner)
        except Stopped:
            log.info("stopped before joining the federation")

    def _where(self, assigned: Assigned | None) -> Where:
        if assigned is None:  # attached straight to the plan's combiner
            assert self.plan.combiner is not None
            return Where(self.plan.combiner, self.plan.identity)
        return Where(assigned.combiner, assigned.identity or self.plan.identity)

    async def _trainer(self, prepared: PreparedPackage, stop: asyncio.Event) -> Trainer:
        """The trainer for the package, prepared (e.g. its env built) and its startup entry point run."""
        trainer = self.trainer_factory(prepared.package_dir, prepared.manifest)
        if isinstance(trainer, HelperAwareTrainer):
            trainer.use_helper(self.helper_type)
        if isinstance(trainer, PreparedTrainer):
            await until_stopped(stop, trainer.prepare())
        if prepared.manifest.has("startup"):
            await self.package.startup(trainer)
        return trainer

    def _model_suffix(self, from_controller: str | None) -> str:
        """Model files are named as the stock client's helper names them (scripts may key on it)."""
        self.helper_type = choose_helper(self.plan.helper_type, from_controller)
        suffix = model_suffix(self.helper_type)
        if suffix is None:
            log.warning("unknown helper_type '%s'; model files are named *.npz", self.helper_type)
            return ".npz"
        return suffix

    async def flush_outbox(self, seconds: float | None = None) -> None:
        """Deliver what the outbox holds, bounded in time (the graceful-shutdown hook)."""
        limit = self.plan.shutdown_flush if seconds is None else seconds
        await self.supervisor.connection.flush_outbox(limit)

    def stop_outlook(self) -> str:
        """What stopping now waits for, in words (the app's stop line says it; the running task's kind)."""
        return self.supervisor.stop_outlook()

    # What the parts know, read-only, for the app and the tests.

    @property
    def identity(self) -> Identity | None:
        where = self.supervisor.where
        return where.identity if where else None

    @property
    def combiner(self) -> CombinerAddress | None:
        where = self.supervisor.where
        return where.combiner if where else None

    @property
    def package_dir(self) -> Path | None:
        return self.prepared.package_dir if self.prepared else None

    @property
    def checksum_verdict(self) -> ChecksumVerdict | None:
        return self.prepared.checksum_verdict if self.prepared else None

    @property
    def connects(self) -> int:
        return self.supervisor.connection.connects

    @property
    def reassignments(self) -> int:
        return self.supervisor.reassignments

    @property
    def inbox(self) -> TaskInbox | None:
        worker = self.supervisor.worker
        return worker.inbox if worker else None

    @property
    def links(self) -> LinkHolder:
        return self.supervisor.connection.links

    @property
    def credentials(self) -> Credentials:
        return self.supervisor.credentials

    @property
    def shutdown_hooks(self) -> list[ShutdownHook]:
        """Run once on the way out, after the last task and before the link closes (append your own)."""
        return self.supervisor.shutdown_hooks
