"""How a compute package gets from the controller to a verified, unpacked directory.

``PackageSetup`` holds the package step of the client's life (``domain.lifecycle``): the
local or callback modes that need no download, the checksum asked of the controller, the
copy kept from the last start (``domain.package_cache``), the download, the SHA-256 checks
against the server, the pin and the site allowlist, the unpack (a fresh directory per
version, or over the site's extract dir, ``domain.extract_dir``), and the package's
``startup`` entry point. Written against the Protocols in ``domain.ports`` only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .credentials import Credentials
from .errors import ConfigError, FedClientError, PackageError
from .extract_dir import RECORD_NAME
from .model import PackageMode
from .package import ChecksumVerdict, Manifest, check_checksum, normalize_checksum
from .package_cache import CACHE_DIR, KeptPackage, intact

# The lifecycle's logger: these lines keep the `logger` they have always had (docs/OPERATING.md).
from .plan import ClientPlan
from .ports import Clock, PackageCache, PackageSource, PackageUnpacker, Random, Trainer
from .retry import call_with_retry
from .wording import Form, setting

log = logging.getLogger("fedclient.lifecycle")


@dataclass
class PackageSetup:
    """One preparation of the compute package; ``package_dir`` and ``checksum_verdict`` are its results."""

    plan: ClientPlan
    package_source: PackageSource | None
    unpacker: PackageUnpacker
    credentials: Credentials
    # Waits between retries; raises when the client is stopped meanwhile.
    pause: Callable[[float], Awaitable[None]]
    cache: PackageCache
    clock: Clock
    random: Random
    package_dir: Path | None = None
    checksum_verdict: ChecksumVerdict | None = None

    async def prepare(self) -> Manifest:
        if not self.plan.package_needed:
            self.package_dir = self.plan.work_dir
            return Manifest()
        unpacker = self.unpacker
        if self.plan.package_mode is PackageMode.LOCAL:
            if self.plan.local_package_dir is None:
                raise PackageError("local package mode needs a package directory")
            self.package_dir = self.plan.local_package_dir
            return await asyncio.to_thread(unpacker.load_manifest, self.package_dir)
        source = self.package_source
        if source is None:
            raise ConfigError("remote package mode needs a controller to download the package from")
        cache_dir = self.plan.work_dir / CACHE_DIR
        server_sum = await call_with_retry(
            lambda: self.credentials.call(source.checksum),
            self.plan.unreachable_retry,
            self.pause,
            "asking for the package checksum",
            now=self.clock.monotonic,
            rand=self.random.uniform,
        )
        expected = {n for n in map(normalize_checksum, (server_sum, self.plan.package_checksum)) if n}
        kept = await asyncio.to_thread(self._kept, cache_dir)
        unchanged_tag = None
        if kept is not None and expected == {kept.sha256}:
            why = "its checksum is unchanged since the last start"
            return await asyncio.to_thread(self._use_kept, kept, server_sum, why)
        if kept is not None and not expected:
            unchanged_tag = kept.tag  # no checksum to compare: ask the server if our copy is current
        download_dir = self.plan.work_dir / "download"  # the source creates it
        fetched = await call_with_retry(
            lambda: self.credentials.call(lambda: source.fetch(download_dir, unchanged_tag)),
            self.plan.unreachable_retry,
            self.pause,
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
            actual = await asyncio.to_thread(self.verify_package, archive, server_sum)
            self.package_dir = await asyncio.to_thread(self._unpack, archive, actual)
            # Recognised next start:
            await asyncio.to_thread(self.cache.keep, cache_dir, archive, actual, fetched.tag)
        finally:
            self.cache.discard(archive)  # refused: the download is not kept
        return await asyncio.to_thread(self.unpacker.load_manifest, self.package_dir)

    def _kept(self, cache_dir: Path) -> KeptPackage | None:
        """The package kept from the last start, if there is one and its file still has the recorded hash."""
        kept = self.cache.lookup(cache_dir)
        return kept if kept is not None and intact(kept, self.unpacker.sha256) else None

    def _use_kept(self, kept: KeptPackage, server_sum: str | None, why: str) -> Manifest:
        """Unpack the kept archive instead of downloading it, after the same checks as a download."""
        actual = self.verify_package(kept.archive, server_sum)
        log.info("package %s not downloaded again: %s (sha256 %s…)", kept.archive.name, why, actual[:12])
        self.package_dir = self._unpack(kept.archive, actual)
        return self.unpacker.load_manifest(self.package_dir)

    def _unpack(self, archive: Path, sha256: str) -> Path:
        """A verified archive into its directory; return the directory holding fedn.yaml."""
        target = self.plan.package_extract_dir
        if target is None:  # a fresh private directory per version
            return self.unpacker.unpack(archive, self.plan.work_dir / "packages" / sha256[:16])
        report = self.unpacker.unpack_over(archive, target, self.plan.work_dir / RECORD_NAME)
        log.info(
            "package unpacked into %s (%s): %s",
            report.target,
            setting("package_extract_dir", Form.ENV),
            report.describe(),
        )
        return report.package_dir

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

    async def startup(self, trainer: Trainer) -> None:
        """FEDn runs a package's `startup` entry point once before serving (e.g. to fetch data)."""
        log.info("running the package's startup entry point")
        try:
            await trainer.startup()
        except FedClientError as exc:
            hint = "" if self.plan.package_extract_dir else _layout_hint(str(exc))
            raise PackageError(f"the package's startup entry point failed: {exc}{hint}") from None


def _layout_hint(failure: str) -> str:
    """A hint for a package that looked for a file above its own directory (``../data``).

    FEDn's client unpacks into ``<start dir>/package``, so such paths reach the site's files
    beside it; without an extract dir ours unpacks under the work dir (docs/MIGRATING.md).
    """
    if "No such file or directory: '../" not in failure:
        return ""
    extract_dir = setting("package_extract_dir", Form.ENV)
    return (
        "\n(the package opens a path above its own directory, which FEDn's client unpacks into "
        f"<start dir>/package: set {extract_dir}=package for that layout, docs/MIGRATING.md)"
    )
