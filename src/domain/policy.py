"""The site policy: the data owner's rules, enforced whatever the compute package says.

A policy file (YAML) and command-line flags give: which packages may run at all
(an allowlist of SHA-256s), the resources an entry point may use (memory, CPU
seconds, wall time, output, open files), whether the package directory is
read-only to its own code, and the archive caps. The file alone gives the
``privacy`` section (``domain.privacy``): no flag, setting or server can relax it.
Parsing is strict: an unknown key or a malformed value is an error that names it,
never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .archive_rules import ArchiveLimits
from .errors import ConfigError
from .privacy import PrivacyPolicy, parse_privacy
from .read_number import as_number

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SIZE = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\s*")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


@dataclass(frozen=True)
class ResourceLimits:
    """Per-run limits for entry points; None means "no limit of this kind"."""

    memory_bytes: int | None = None  # address space (RLIMIT_AS)
    cpu_seconds: int | None = None  # CPU time (RLIMIT_CPU)
    wall_seconds: float | None = None  # elapsed time, enforced by the client
    output_bytes: int | None = None  # stdout + stderr, counted by the client
    open_files: int | None = None  # file descriptors (RLIMIT_NOFILE)

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


@dataclass(frozen=True)
class SitePolicy:
    allowed_packages: frozenset[str] = frozenset()
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    read_only_package: bool = False
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    source: str = "defaults"
    # From the policy file only: what every training update may reveal (None: as the package wrote it).
    privacy: PrivacyPolicy | None = None

    def describe(self) -> list[str]:
        """What is in force, one line each, for ``fedclient policy show``."""
        lines = [f"site policy from {self.source}"]
        if self.allowed_packages:
            lines.append(f"allowed packages ({len(self.allowed_packages)}):")
            lines += [f"  {sha}" for sha in sorted(self.allowed_packages)]
        else:
            lines.append("allowed packages: any (no allowlist; checksums are still checked)")
        lim = self.limits
        lines.append("entry-point limits:")
        lines.append(f"  memory:      {_bytes(lim.memory_bytes)}")
        lines.append(f"  cpu time:    {_num(lim.cpu_seconds, 's')}")
        lines.append(f"  wall time:   {_num(lim.wall_seconds, 's')}")
        lines.append(f"  output:      {_bytes(lim.output_bytes)}")
        lines.append(f"  open files:  {_num(lim.open_files, '')}")
        lines.append(f"read-only package directory: {'yes' if self.read_only_package else 'no'}")
        arc = self.archive
        lines.append("archive caps:")
        lines.append(f"  download:    {_bytes(arc.max_download_bytes)}")
        lines.append(f"  unpacked:    {_bytes(arc.max_total_bytes)}")
        lines.append(f"  per member:  {_bytes(arc.max_member_bytes)}")
        lines.append(f"  members:     {arc.max_members}")
        lines.append(f"  ratio:       {arc.max_ratio:g}x (beyond the first {_bytes(arc.ratio_slack_bytes)})")
        if self.privacy is None:
            lines.append("privacy: off (updates leave as the package wrote them)")
        else:
            lines += self.privacy.describe()
        return lines


# What a size may be written as, for messages that refuse one.
SIZE_FORMS = "a number of bytes, or a number with B, KiB, MiB, GiB, TiB, KB, MB, GB or TB (e.g. 512MiB)"


def size_bytes(value: object) -> int | None:
    """The byte count ``value`` writes (``512MiB``, ``2 GB``, ``1.5g``, ``1048576``), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])
    return None


def parse_size(value: object, what: str) -> int:
    """A byte count: an integer, or text such as ``512MiB``, ``2 GB``, ``1.5g``."""
    size = size_bytes(value)
    if size is None:
        raise ConfigError(f"{what}: {value!r} is not a size; use {SIZE_FORMS}")
    if size <= 0:
        raise ConfigError(f"{what}: must be more than 0 bytes, got {value!r}")
    return size


def parse_number(value: object, what: str, integer: bool = False) -> float:
    number = as_number(value, what)
    if not number > 0 or number == float("inf") or (integer and number != int(number)):
        raise ConfigError(f"{what}: expected a positive {'whole ' if integer else ''}number, got {value!r}")
    return number


def parse_sha256(value: object, what: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _SHA256.fullmatch(text):
        raise ConfigError(f"{what}: {value!r} is not a SHA-256 (64 hex digits)")
    return text


_LIMIT_KEYS = {
    "memory": ("memory_bytes", "size"),
    "cpu_seconds": ("cpu_seconds", "int"),
    "wall_seconds": ("wall_seconds", "float"),
    "output": ("output_bytes", "size"),
    "open_files": ("open_files", "int"),
}
_ARCHIVE_KEYS = {
    "max_download": ("max_download_bytes", "size"),
    "max_unpacked": ("max_total_bytes", "size"),
    "max_member": ("max_member_bytes", "size"),
    "max_members": ("max_members", "int"),
    "max_ratio": ("max_ratio", "float"),
}
POLICY_KEYS = ("allowed_packages", "limits", "read_only_package", "archive", "privacy")


def parse_policy(data: object, source: str) -> SitePolicy:
    """A SitePolicy from a loaded policy document (see docs/SECURITY.md for the format)."""
    if data is None:
        return SitePolicy(source=source)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a site policy is a mapping, got {type(data).__name__}")
    unknown = [k for k in data if k not in POLICY_KEYS]
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(POLICY_KEYS)})")
    allowed = data.get("allowed_packages") or []
    if not isinstance(allowed, list):
        raise ConfigError(f"{source}: allowed_packages must be a list of SHA-256s")
    shas = frozenset(parse_sha256(v, f"{source}: allowed_packages") for v in allowed)
    read_only = data.get("read_only_package", False)
    if not isinstance(read_only, bool):
        raise ConfigError(f"{source}: read_only_package must be true or false, got {read_only!r}")
    limits = ResourceLimits(**_section(data.get("limits"), _LIMIT_KEYS, f"{source}: limits"))
    archive = replace(ArchiveLimits(), **_section(data.get("archive"), _ARCHIVE_KEYS, f"{source}: archive"))
    # Present but empty is an error, not "off": a mis-indented section must never drop the privacy.
    privacy = parse_privacy(data["privacy"], f"{source}: privacy") if "privacy" in data else None
    return SitePolicy(shas, limits, read_only, archive, source, privacy)


def _section(data: object, keys: Mapping[str, tuple[str, str]], where: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in keys:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(keys)})")
        if value is None:
            continue
        attr, kind = keys[key]
        out[attr] = convert(value, kind, f"{where}.{key}")
    return out


def convert(value: object, kind: str, what: str) -> int | float:
    if kind == "size":
        return parse_size(value, what)
    if kind == "int":
        return int(parse_number(value, what, integer=True))
    return parse_number(value, what)


def _bytes(value: int | None) -> str:
    if value is None:
        return "no limit"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size and value % (size // 1024 or 1) == 0:
            return f"{value / size:g} {unit} ({value} bytes)"
    return f"{value} bytes"


def _num(value: float | None, unit: str) -> str:
    return "no limit" if value is None else f"{value:g}{(' ' + unit) if unit else ''}"
