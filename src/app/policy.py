"""The site policy in force: the policy file, then the flags/environment on top of it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ..adapters.text_record import FileTextRecord
from ..adapters.yaml_errors import yaml_problem
from ..domain.errors import ConfigError
from ..domain.policy import SitePolicy, convert, parse_policy, parse_sha256, parse_size
from ..domain.privacy import RECORD, PrivacyBudget
from .extras import require_extra
from .settings import Settings

_POLICY_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_MODEL_BYTES = 8 * 1024**3


def read_policy_file(path: Path) -> SitePolicy:
    try:
        if path.stat().st_size > _POLICY_MAX_BYTES:
            raise ConfigError(f"policy file {path} is larger than {_POLICY_MAX_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"policy file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy file {path} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(str(path), exc, text)) from None
    return parse_policy(data, str(path))


def site_policy(settings: Settings) -> SitePolicy:
    """The policy file (if any) with every policy flag that was given laid over it."""
    policy = read_policy_file(settings.policy_file) if settings.policy_file else SitePolicy()
    flags: list[str] = []
    if settings.allow_package:
        shas = frozenset(parse_sha256(v, "--allow-package") for v in settings.allow_package)
        policy = replace(policy, allowed_packages=policy.allowed_packages | shas)
        flags.append("--allow-package")

    def overrides(table: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
        """The fields of ``table`` given as settings, converted; each flag is noted as in force."""
        values: dict[str, Any] = {}
        for setting, attr, kind in table:
            value = getattr(settings, setting)
            if value is not None:
                flag = "--" + setting.replace("_", "-")
                values[attr] = convert(value, kind, flag)
                flags.append(flag)
        return values

    limits = overrides(
        (
            ("limit_memory", "memory_bytes", "size"),
            ("limit_cpu_seconds", "cpu_seconds", "int"),
            ("limit_wall_seconds", "wall_seconds", "float"),
            ("limit_output", "output_bytes", "size"),
            ("limit_open_files", "open_files", "int"),
        )
    )
    if limits:
        policy = replace(policy, limits=replace(policy.limits, **limits))
    archive = overrides(
        (
            ("max_package_bytes", "max_download_bytes", "size"),
            ("max_unpacked_bytes", "max_total_bytes", "size"),
            ("max_member_bytes", "max_member_bytes", "size"),
            ("max_package_members", "max_members", "int"),
            ("max_compression_ratio", "max_ratio", "float"),
        )
    )
    if archive:
        policy = replace(policy, archive=replace(policy.archive, **archive))
    if settings.read_only_package is not None:
        policy = replace(policy, read_only_package=settings.read_only_package)
        flags.append("--read-only-package")
    if flags:
        source = policy.source if settings.policy_file else ""
        policy = replace(policy, source=" + ".join(x for x in (source, "flags " + ", ".join(flags)) if x))
    return policy


def max_model_bytes(settings: Settings) -> int:
    if settings.max_model_bytes is None:
        return DEFAULT_MAX_MODEL_BYTES
    return parse_size(settings.max_model_bytes, "--max-model-bytes")


def privacy_budget(settings: Settings, policy: SitePolicy) -> PrivacyBudget:
    """The budget record in the work dir under the policy's privacy section (needs the privacy extra)."""
    assert policy.privacy is not None
    require_extra("privacy", what=f"{policy.source}: the privacy section")
    from ..adapters.dp_accountant import RdpAccountant

    return PrivacyBudget(
        policy.privacy, FileTextRecord(settings.work_dir.resolve() / RECORD), RdpAccountant()
    )
