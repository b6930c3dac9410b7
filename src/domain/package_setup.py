"""How a compute package gets from the controller to a verified, unpacked directory.

``PackageSetup`` holds the package step of the client's life (``domain.lifecycle``), with a
plan of its own (``PackagePlan``) and a ``PreparedPackage`` as its result: the
local or callback modes that need no download, the checksum asked of the controller, the
copy kept from the last start (``domain.package_cache``), the download, the SHA-256 checks
against the server, the pin and the site allowlist, the unpack (a fresh directory per
version, or over the site's extract dir, ``domain.extract_dir``), and the package's
``startup`` entry point. Written against the Protocols in ``domain.ports`` only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from .credentials import Credentials
from .errors import ConfigError, FedClientError, PackageError
from .extract_dir import RECORD_NAME
from .model import PackageMode
from .package import ChecksumVerdict, Manifest, check_checksum, normalize_checksum
from .package_cache import CACHE_DIR, KeptPackage, intact
from .ports import Clock, PackageCache, PackageSource, PackageUnpacker, Random, Trainer
from .retry import RetryConfig, call_with_retry
from .stopping import pause
from .wording import Form, SettingNames, field_names

# The lifecycle's logger: these lines keep the `logger` they have always had (docs/OPERATING.md).
log = logging.getLogger("fedclient.lifecycle")


@dataclass(frozen=True)
class PackagePlan:
    """What the package step needs to know (the app derives it from the client's plan)."""

    work_dir: Path  # the cache, the download and the per-version directories are under it
    # An unreachable controller (checksum, download) is retried this often.
    unreachable_retry: RetryConfig
    mode: PackageMode = PackageMode.REMOTE
    local_dir: Path | None = None
    # Unpack over this directory (as FEDn's client does), not a fresh one per version (domain.extract_dir).
    extract_dir: Path | None = None
    needed: bool = True  # False: the trainer is the user's own Python, no compute package at all
    checksum: str | None = None  # pinned by the site
    require_checksum: bool = False
    allowed: frozenset[str] = frozenset()  # the site policy's allowlist of SHA-256s (empty: any)
    setting_names: SettingNames = field_names  # how messages name a setting (the app's spelling)


@dataclass(frozen=True)
class PreparedPackage:
    """The package ready to run: where it is, its manifest, and how its checksum was judged."""

    package_dir: Path
    manifest: Manifest
    checksum_verdict: ChecksumVerdict | None = None  # None: nothing was downloaded or unpacked


@dataclass
class PackageSetup:
    """Prepares the compute package (``prepare``) and runs its ``startup`` entry point; keeps no result."""

    plan: PackagePlan
    source: PackageSource | None
    unpacker: PackageUnpacker
    credentials: Credentials
    cache: PackageCache
    clock: Clock
    random: Random

    async def prepare(self, stop: asyncio.Event | None = None) -> PreparedPackage:
        """Ready the package; the waits between retries end with ``Stopped`` when ``stop`` is set."""
        plan, unpacker = self.plan, self.unpacker
        if not plan.needed:
            return PreparedPackage(plan.work_dir, Manifest())
        if plan.mode is PackageMode.LOCAL:
            if plan.local_dir is None:
                raise PackageError("local package mode needs a package directory")
            manifest = await asyncio.to_thread(unpacker.load_manifest, plan.local_dir)
            return PreparedPackage(plan.local_dir, manifest)
        stopping = stop or asyncio.Event()

        async def wait(seconds: float) -> None:
            await pause(stopping, self.clock, seconds)

        source = self.source
        if source is None:
            raise ConfigError("remote package mode needs a controller to download the package from")
        cache_dir = plan.work_dir / CACHE_DIR
        server_sum = await call_with_retry(
            lambda: self.credentials.call(source.checksum),
            plan.unreachable_retry,
            wait,
            "asking for the package checksum",
            now=self.clock.monotonic,
            rand=self.random.uniform,
        )
        expected = {n for n in map(normalize_checksum, (server_sum, plan.checksum)) if n}
        kept = await asyncio.to_thread(self._kept, cache_dir)
        unchanged_tag = None
        if kept is not None and expected == {kept.sha256}:
            why = "its checksum is unchanged since the last start"
            return await asyncio.to_thread(self._use_kept, kept, server_sum, why)
        if kept is not None and not expected:
            unchanged_tag = kept.tag  # no checksum to compare: ask the server if our copy is current
        download_dir = plan.work_dir / "download"  # the source creates it
        fetched = await call_with_retry(
            lambda: self.credentials.call(lambda: source.fetch(download_dir, unchanged_tag)),
            plan.unreachable_retry,
            wait,
            "downloading the compute package",
            now=self.clock.monotonic,
            rand=self.random.uniform,
        )
        if fetched.path is None:
            assert kept is not None
            why = "the server says it is unchanged since the last start"
            return await asyncio.to_thread(self._use_kept, kept, server_sum, why)
        archive = fetched.path
        # Hashing and unpacking a big package take seconds: off the event loop, so
        # heartbeats and signals are not held up.
        try:
            actual, verdict = await asyncio.to_thread(self.verify_package, archive, server_sum)
            package_dir = await asyncio.to_thread(self._unpack, archive, actual)
            # Recognised next start:
            await asyncio.to_thread(self.cache.keep, cache_dir, archive, actual, fetched.tag)
        finally:
            self.cache.discard(archive)  # refused: the download is not kept
        manifest = await asyncio.to_thread(self.unpacker.load_manifest, package_dir)
        return PreparedPackage(package_dir, manifest, verdict)

    def _kept(self, cache_dir: Path) -> KeptPackage | None:
        """The package kept from the last start, if there is one and its file still has the recorded hash."""
        kept = self.cache.lookup(cache_dir)
        return kept if kept is not None and intact(kept, self.unpacker.sha256) else None

    def _use_kept(self, kept: KeptPackage, server_sum: str | None, why: str) -> PreparedPackage:
        """Unpack the kept archive instead of downloading it, after the same checks as a download."""
        actual, verdict = self.verify_package(kept.archive, server_sum)
        log.info("package %s not downloaded again: %s (sha256 %s…)", kept.archive.name, why, actual[:12])
        package_dir = self._unpack(kept.archive, actual)
        return PreparedPackage(package_dir, self.unpacker.load_manifest(package_dir), verdict)

    def _unpack(self, archive: Path, sha256: str) -> Path:
        """A verified archive into its directory; return the directory holding fedn.yaml."""
        target = self.plan.extract_dir
        if target is None:  # a fresh private directory per version
            return self.unpacker.unpack(archive, self.plan.work_dir / "packages" / sha256[:16])
        report = self.unpacker.unpack_over(archive, target, self.plan.work_dir / RECORD_NAME)
        log.info(
            "package unpacked into %s (%s): %s",
            report.target,
            self.plan.setting_names("package_extract_dir", Form.ENV),
            report.describe(),
        )
        return report.package_dir

    def verify_package(self, archive: Path, server_sum: str | None) -> tuple[str, ChecksumVerdict]:
        """Check the archive's SHA-256 against the server, the pin and the site allowlist; return it
        with the verdict."""
        actual = self.unpacker.sha256(archive)
        verdict = check_checksum(archive.name, actual, server_sum, self.plan.checksum)
        allowed = self.plan.allowed
        if allowed and actual not in allowed:
            raise PackageError(
                f"package '{archive.name}' (sha256 {actual}) is not in the site policy's allowlist "
                f"of {len(allowed)} package(s); refused before unpacking"
            )
        if verdict is ChecksumVerdict.UNVERIFIED and not allowed:
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
        return actual, verdict

    async def startup(self, trainer: Trainer) -> None:
        """FEDn runs a package's `startup` entry point once before serving (e.g. to fetch data)."""
        log.info("running the package's startup entry point")
        try:
            await trainer.startup()
        except FedClientError as exc:
            hint = "" if self.plan.extract_dir else _layout_hint(str(exc), self.plan.setting_names)
            raise PackageError(f"the package's startup entry point failed: {exc}{hint}") from None


def _layout_hint(failure: str, names: SettingNames) -> str:
    """A hint for a package that looked for a file above its own directory (``../data``).

    FEDn's client unpacks into ``<start dir>/package``, so such paths reach the site's files
    beside it; without an extract dir ours unpacks under the work dir (docs/MIGRATING.md).
    """
    if "No such file or directory: '../" not in failure:
        return ""
    extract_dir = names("package_extract_dir", Form.ENV)
    return (
        "\n(the package opens a path above its own directory, which FEDn's client unpacks into "
        f"<start dir>/package: set {extract_dir}=package for that layout, docs/MIGRATING.md)"
    )
