"""Turn Settings into the domain's ClientPlan (what to join, as whom, with which package)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..domain.errors import ConfigError
from ..domain.extract_dir import overlap
from ..domain.model import CombinerAddress, PackageMode
from ..domain.outbox import DELIVERY_RETRY
from ..domain.package import MANIFEST_NAME
from ..domain.plan import ClientPlan
from ..domain.policy import SitePolicy
from .setting_names import spell
from .settings import Settings
from .workdir import decide_identity


def resolve_local_package(path: Path) -> Path:
    """`--local-package` alone means ./client (FEDn's layout) or the current directory."""
    if path != Path(".") and not path.is_dir():
        raise ConfigError(f"--local-package {path}: {'not a' if path.exists() else 'no such'} directory")
    candidates = [path] if path != Path(".") else [Path("client"), Path(".")]
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).is_file():
            return candidate.resolve()
    where = " or ".join(str(c.resolve()) for c in candidates)
    raise ConfigError(f"--local-package: no {MANIFEST_NAME} in {where}")


def package_extract_dir(settings: Settings) -> Path | None:
    """FEDN_PACKAGE_EXTRACT_DIR, absolute (a relative one is under the start directory, as in FEDn).

    None when nothing is unpacked: no extract dir set, a --local-package, or --entrypoint.
    """
    if settings.package_extract_dir is None or settings.local_package is not None or settings.entrypoint:
        return None
    return settings.package_extract_dir.resolve()


def extract_dir_overlap(
    settings: Settings, origin: str = "package_extract_dir (FEDN_PACKAGE_EXTRACT_DIR)"
) -> str | None:
    """The package may overwrite anything in its extract dir: the client's own files must not be there."""
    target = package_extract_dir(settings)
    work_dir = settings.work_dir.resolve()
    if target is not None and overlap(target, work_dir):
        return (
            f"{origin} ({target}) and the work dir ({work_dir}) must not contain one another: "
            "the package would be unpacked over the client's own files"
        )
    return None


def build_plan(settings: Settings, policy: SitePolicy | None = None, in_process: bool = False) -> ClientPlan:
    """``in_process``: the trainer is the user's own callbacks (also with --entrypoint), no package.

    The identity kept in the work dir is read, not written: the container's ``identity_file``
    resource keeps it when the client starts.
    """
    in_process = in_process or settings.entrypoint is not None
    if settings.combiner and not settings.combiner_port:
        raise ConfigError("--combiner needs --combiner-port")
    if not settings.combiner and not settings.api_url:
        raise ConfigError("say where to join: --api-url (the controller), or --combiner with --combiner-port")
    if in_process and settings.local_package is not None:
        raise ConfigError(
            "--entrypoint runs your callbacks instead of a compute package: drop --local-package"
        )
    local = resolve_local_package(settings.local_package) if settings.local_package is not None else None
    if settings.combiner and local is None and not in_process:
        raise ConfigError("attaching straight to a combiner (--combiner) needs --local-package")
    # Here, not only in the CLI's settings rules: every way in (the Python API too) builds a plan.
    problem = None if in_process else extract_dir_overlap(settings)
    if problem:
        raise ConfigError(problem)
    combiner = (
        CombinerAddress(settings.combiner, int(settings.combiner_port or 0)) if settings.combiner else None
    )
    work_dir = settings.work_dir.resolve()
    return ClientPlan(
        setting_names=spell,
        identity=decide_identity(work_dir, settings.name, settings.client_id),
        work_dir=work_dir,
        # FEDn's in-process client joins as a local-package client too.
        package_mode=PackageMode.LOCAL if local or in_process else PackageMode.REMOTE,
        local_package_dir=local,
        package_extract_dir=None if in_process else package_extract_dir(settings),
        package_needed=not in_process,
        preferred_combiner=settings.preferred_combiner or None,
        combiner=combiner,
        package_checksum=settings.package_checksum,
        require_checksum=settings.require_checksum,
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_miss_limit=settings.heartbeat_miss_limit,
        shutdown_grace=settings.shutdown_grace,
        telemetry_interval=settings.telemetry_interval,
        task_queue_limit=settings.task_queue_limit,
        # The one delivery retry (outbox and task runner), capped by --delivery-retry-max.
        delivery_retry=dataclasses.replace(
            DELIVERY_RETRY,
            initial=min(DELIVERY_RETRY.initial, settings.delivery_retry_max),
            maximum=settings.delivery_retry_max,
        ),
        shutdown_flush=settings.shutdown_flush,
        helper_type=settings.helper_type or None,
        allowed_packages=policy.allowed_packages if policy else frozenset(),
    )
