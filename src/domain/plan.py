"""``ClientPlan``: everything the client's life needs to know, decided by the app layer from settings.

Its own module so that every part of the client's life reads it without importing the
lifecycle; the package step gets only its own part of it (``package``, a ``PackagePlan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .inbox import DEFAULT_LIMIT
from .model import CombinerAddress, Identity, PackageMode
from .outbox import DELIVERY_RETRY
from .package_setup import PackagePlan
from .retry import RetryConfig
from .wording import SettingNames, field_names


@dataclass(frozen=True)
class ClientPlan:
    """Everything the lifecycle needs to know, decided by the app layer from settings."""

    identity: Identity
    work_dir: Path
    package_mode: PackageMode = PackageMode.REMOTE
    local_package_dir: Path | None = None
    # FEDN_PACKAGE_EXTRACT_DIR (absolute): unpack over this directory, as FEDn's client does,
    # instead of a fresh <work dir>/packages/<sha256> per version (domain.extract_dir).
    package_extract_dir: Path | None = None
    # False when the trainer is the user's own Python (callbacks): no compute package at all.
    package_needed: bool = True
    preferred_combiner: str | None = None
    combiner: CombinerAddress | None = None  # set: attach directly, skip the controller
    package_checksum: str | None = None
    require_checksum: bool = False
    # Site policy: when non-empty, only packages with one of these SHA-256s are unpacked.
    allowed_packages: frozenset[str] = frozenset()
    heartbeat_interval: float = 2.0
    # CPU/memory telemetry every this many seconds (FEDn's client: 5 s); 0 turns it off.
    telemetry_interval: float = 5.0
    helper_type: str | None = None  # set: wins over the controller's (as `fedn client start -hp`)
    assign_retry: RetryConfig = field(default_factory=lambda: RetryConfig(initial=3.0, maximum=60.0))
    # An unreachable controller (or package download) is retried this often before the client gives up.
    unreachable_retry: RetryConfig = field(
        default_factory=lambda: RetryConfig(initial=2.0, maximum=60.0, max_attempts=30)
    )
    reconnect_retry: RetryConfig = field(default_factory=lambda: RetryConfig(initial=1.0, maximum=30.0))
    # After this many failed reconnects in a row, ask the controller again (it may move us)...
    reassign_after: int = 10
    # ...at most this many times; then go back to the old combiner. Never an endless loop.
    reassign_budget: int = 3
    # This many heartbeats missed in a row mean the connection is dead: reconnect.
    heartbeat_miss_limit: int = 3
    # On SIGINT/SIGTERM the running task may finish for this long before it is cancelled.
    shutdown_grace: float = 120.0
    # Each shutdown hook (e.g. flushing the outbox) gets this long.
    flush_timeout: float = 30.0
    # How long a task waits for a lost combiner connection to come back before it fails.
    link_wait: float = 600.0
    # Tasks received and not yet started (the oldest is dropped, with a log line, when full).
    task_queue_limit: int = DEFAULT_LIMIT
    # How results are retried: the outbox's (no attempt limit: its round's rules end them) and the
    # task runner's direct calls (the same backoff, at most task_calls.DIRECT_ATTEMPTS tries).
    delivery_retry: RetryConfig = DELIVERY_RETRY
    # On stop, how long the outbox may take to deliver what it holds before the channels close.
    shutdown_flush: float = 10.0
    # After a reconnect, how long the outbox lets queued tasks arrive before it resends anything.
    outbox_settle: float = 1.0
    # How the client's messages name a setting the user can change (the app's flags and variables).
    setting_names: SettingNames = field_names

    @property
    def package(self) -> PackagePlan:
        """The package step's part of the plan (``domain.package_setup``)."""
        return PackagePlan(
            work_dir=self.work_dir,
            unreachable_retry=self.unreachable_retry,
            mode=self.package_mode,
            local_dir=self.local_package_dir,
            extract_dir=self.package_extract_dir,
            needed=self.package_needed,
            checksum=self.package_checksum,
            require_checksum=self.require_checksum,
            allowed=self.allowed_packages,
            setting_names=self.setting_names,
        )
