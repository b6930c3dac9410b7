"""Rules for compute packages: the manifest, the checksum, and which archive members are safe."""

from __future__ import annotations

import enum
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from .errors import PackageError

MANIFEST_NAME = "fedn.yaml"
KNOWN_ENTRY_POINTS = ("build", "startup", "train", "validate", "predict", "forward", "backward")
# Characters that only mean something to a shell. We never run a shell, so a command
# using them would silently do something else; refuse it with a clear message.
_SHELL_SYNTAX = re.compile(r"&&|\|\||[|;<>`$]|\$\(")


@dataclass(frozen=True)
class Manifest:
    """A parsed ``fedn.yaml``: entry-point name → argv, plus the optional python_env file."""

    entry_points: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    python_env: str | None = None

    def argv(self, entry_point: str) -> tuple[str, ...]:
        try:
            return self.entry_points[entry_point]
        except KeyError:
            have = ", ".join(sorted(self.entry_points)) or "none"
            raise PackageError(
                f"the compute package has no '{entry_point}' entry point in {MANIFEST_NAME} (it has: {have})"
            ) from None

    def has(self, entry_point: str) -> bool:
        return entry_point in self.entry_points


def parse_manifest(data: object, source: str = MANIFEST_NAME) -> Manifest:
    """Validate an already-loaded ``fedn.yaml`` document and turn it into a Manifest."""
    if not isinstance(data, Mapping):
        raise PackageError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    entry_points = data.get("entry_points")
    if not isinstance(entry_points, Mapping) or not entry_points:
        raise PackageError(
            f"{source}: 'entry_points' must be a non-empty mapping of name -> {{command: ...}}"
        )
    parsed: dict[str, tuple[str, ...]] = {}
    for name, spec in entry_points.items():
        if not isinstance(name, str) or not name:
            raise PackageError(f"{source}: entry point names must be non-empty strings, got {name!r}")
        parsed[name] = _parse_command(source, name, spec)
    python_env = data.get("python_env")
    if python_env is not None and (not isinstance(python_env, str) or not python_env.strip()):
        raise PackageError(f"{source}: 'python_env' must be a file name, got {python_env!r}")
    return Manifest(entry_points=parsed, python_env=python_env)


def _parse_command(source: str, name: str, spec: object) -> tuple[str, ...]:
    if not isinstance(spec, Mapping) or "command" not in spec:
        raise PackageError(f"{source}: entry point '{name}' must be a mapping with a 'command' key")
    command = spec["command"]
    if not isinstance(command, str) or not command.strip():
        raise PackageError(f"{source}: entry point '{name}' has an empty or non-text command")
    match = _SHELL_SYNTAX.search(command)
    if match:
        raise PackageError(
            f"{source}: entry point '{name}' uses shell syntax ({match.group(0)!r}); fedclient runs "
            "commands without a shell, so put that logic in a script"
        )
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise PackageError(f"{source}: entry point '{name}' command cannot be split: {exc}") from None
    return argv


# ---------------------------------------------------------------- checksum --


class ChecksumVerdict(enum.Enum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"


def normalize_checksum(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    return value or None


def check_checksum(package: str, actual: str, server: str | None, configured: str | None) -> ChecksumVerdict:
    """Compare the file's SHA-256 with what the server and the user expect.

    Every expectation that is present must match; a mismatch is fatal. With no
    expectation at all the package is UNVERIFIED (the caller decides whether
    that is acceptable).
    """
    actual_n = normalize_checksum(actual) or ""
    for origin, expected in (("configured", configured), ("server", server)):
        expected_n = normalize_checksum(expected)
        if expected_n is not None and expected_n != actual_n:
            raise PackageError(
                f"checksum mismatch for package '{package}': expected {expected_n[:12]}… "
                f"({origin}), got {actual_n[:12]}…"
            )
    if normalize_checksum(configured) or normalize_checksum(server):
        return ChecksumVerdict.VERIFIED
    return ChecksumVerdict.UNVERIFIED


# ---------------------------------------------------------- archive safety --


class MemberType(enum.Enum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    DEVICE = "device"
    FIFO = "fifo"
    OTHER = "other"


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 10_000
    max_member_bytes: int = 4 * 1024**3
    max_total_bytes: int = 8 * 1024**3


@dataclass(frozen=True)
class ArchiveMember:
    name: str
    type: MemberType
    size: int = 0


def member_problem(member: ArchiveMember, limits: ArchiveLimits = ArchiveLimits()) -> str | None:
    """Why this member must not be extracted, or ``None`` if it is safe.

    Safe means: a regular file or directory whose relative path stays inside
    the target directory, within the size limit.
    """
    name = member.name
    if not name or "\x00" in name:
        return "empty or NUL-containing name"
    if member.type not in (MemberType.FILE, MemberType.DIRECTORY):
        return f"{member.type.value} entries are not allowed"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "path escapes the target directory"
    if member.size < 0 or member.size > limits.max_member_bytes:
        return f"member size {member.size} exceeds the limit of {limits.max_member_bytes} bytes"
    return None


def check_members(members: list[ArchiveMember], limits: ArchiveLimits = ArchiveLimits()) -> None:
    """Raise PackageError naming the first unsafe member, or when the archive is too large."""
    if len(members) > limits.max_members:
        raise PackageError(f"archive has {len(members)} members, more than the limit of {limits.max_members}")
    total = 0
    for member in members:
        problem = member_problem(member, limits)
        if problem:
            raise PackageError(f"unsafe archive member '{member.name}': {problem}")
        total += member.size
        if total > limits.max_total_bytes:
            raise PackageError(f"archive unpacks to more than {limits.max_total_bytes} bytes")


def safe_filename(name: str | None, fallback: str = "package.tgz") -> str:
    """A server-supplied file name reduced to a plain base name we can safely write to."""
    if not name:
        return fallback
    base = PurePosixPath(name.replace("\\", "/")).name
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*')
    if base in ("", ".", ".."):
        return fallback
    return base
