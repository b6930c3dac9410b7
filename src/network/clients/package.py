"""``PackageRuntime``: download, verify, unpack and run a compute package, as FEDn's client API names it.

Every step is the adapters' and the domain's: the controller_http download (streamed,
renamed into place when complete), the domain's checksum rule, the archive adapter's
member-by-member safety checks, and the trainer the app's container builds (no shell,
a timeout, output captured). Methods answer as FEDn's do (True/None, True/False) and
log the reason of a failure.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from pathlib import Path
from typing import Any

from ...adapters.controller_http import ControllerEndpoint, HttpxPackageSource
from ...adapters.package_archive import TarPackageUnpacker
from ...app.container import build_container
from ...app.settings_load import load_settings
from ...domain.errors import FedClientError, PackageError
from ...domain.package import ChecksumVerdict, check_checksum
from ...domain.ports import Trainer
from .connect import base_url

log = logging.getLogger("fedclient.api")


class PackageRuntime:
    """A compute package under ``package_path``: the archive in ``download/``, the files in ``package/``."""

    def __init__(self, package_path: str | Path) -> None:
        self.pkg_path = Path(package_path)
        self.pkg_name: str | None = None
        self.checksum: str | None = None
        self.archive: Path | None = None
        self.run_path: Path | None = None
        self._unpacker = TarPackageUnpacker()

    def download(
        self,
        host: str,
        port: int | None,
        token: str | None,
        force_ssl: bool = False,
        secure: bool = False,
        name: str | None = None,
    ) -> bool | None:
        """Fetch the controller's active package (or, with ``name``, the one stored under that
        file name) and its checksum: True, or None on failure."""
        try:
            endpoint = ControllerEndpoint.build(base_url(host, force_ssl or secure), port)
            self.archive, self.checksum = asyncio.run(self._download(endpoint, token, name))
        except FedClientError as exc:
            log.error("package download failed: %s", exc)
            return None
        self.pkg_name = self.archive.name
        return True

    async def _download(
        self, endpoint: ControllerEndpoint, token: str | None, name: str | None
    ) -> tuple[Path, str | None]:
        dest = self.pkg_path / "download"
        dest.mkdir(parents=True, exist_ok=True)
        async with HttpxPackageSource(endpoint, token, name=name) as source:
            return await source.download(dest), await source.checksum()

    def validate(self, expected_checksum: str | None) -> bool:
        """True when the archive matches ``expected_checksum`` and the server's checksum (those given)."""
        if self.archive is None:
            log.error("no package downloaded to validate")
            return False
        try:
            actual = self._unpacker.sha256(self.archive)
            verdict = check_checksum(self.archive.name, actual, self.checksum, expected_checksum)
        except PackageError as exc:
            log.error("%s", exc)
            return False
        if verdict is ChecksumVerdict.UNVERIFIED:
            log.warning("package %s cannot be verified: no checksum given or served", self.archive.name)
            return False
        return True

    def unpack(self) -> bool:
        """Check every member and extract into ``package/``; ``run_path`` is then the dir with fedn.yaml."""
        if self.archive is None:
            log.error("no package downloaded to unpack")
            return False
        try:
            self.run_path = self._unpacker.unpack(self.archive, self.pkg_path / "package")
        except PackageError as exc:
            log.error("%s", exc)
            return False
        return True

    def dispatcher(self, run_path: str | Path) -> PackageDispatcher:
        """Runs the package's entry points through fedclient's trainer (PackageError if unusable)."""
        return PackageDispatcher(Path(run_path))


class PackageDispatcher:
    """A package's entry points, run one at a time with the trainer the `fedclient run` command uses."""

    def __init__(self, run_path: Path) -> None:
        self.run_path = run_path
        self.manifest = TarPackageUnpacker().load_manifest(run_path)
        settings = load_settings({})
        self._trainer: Trainer = build_container(settings).trainer_factory()(run_path, self.manifest)

    def run_cmd(self, cmd: str) -> dict[str, Any] | None:
        """``"train IN OUT"``, ``"validate IN OUT"``, ``"predict IN OUT"`` or ``"startup"``."""
        entry, *args = shlex.split(cmd)
        if entry == "train" and len(args) == 2:
            return self.train(args[0], args[1])
        if entry == "validate" and len(args) == 2:
            return asyncio.run(self._trainer.validate(Path(args[0]), Path(args[1])))
        if entry == "predict" and len(args) == 2:
            return asyncio.run(self._trainer.predict(Path(args[0]), Path(args[1])))
        if entry == "startup" and not args:
            asyncio.run(self._trainer.startup())
            return None
        raise PackageError(f"run_cmd takes 'train|validate|predict IN OUT' or 'startup', got {cmd!r}")

    def train(
        self, in_model: str | Path, out_model: str | Path, client_settings: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return asyncio.run(self._trainer.train(Path(in_model), Path(out_model), client_settings or {}))
