"""Rules for compute packages: the manifest, the checksum, and which archive members are safe."""

from __future__ import annotations

import enum
import re
import shlex
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .archive_rules import (
    ArchiveLimits,
    ArchiveMember,
    MemberChecker,
    MemberType,
    check_members,
    member_problem,
    name_problem,
)
from .errors import PackageError

__all__ = [
    "ArchiveLimits",
    "ArchiveMember",
    "MemberChecker",
    "MemberType",
    "check_members",
    "member_problem",
]

MANIFEST_NAME = "fedn.yaml"
KNOWN_ENTRY_POINTS = ("build", "startup", "train", "validate", "predict", "forward", "backward")
# The whole of FEDn's fedn.yaml schema: anything else is a typo or something we would ignore.
MANIFEST_KEYS = ("entry_points", "python_env")
ENTRY_POINT_KEYS = ("command",)
MAX_COMMAND_CHARS = 4096
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
    """Validate an already-loaded ``fedn.yaml`` document against the schema and build a Manifest.

    Schema: a mapping with ``entry_points`` (name -> ``{command: <string>}``) and an
    optional ``python_env`` (a relative path of a file inside the package). No other keys.
    """
    if not isinstance(data, Mapping):
        raise PackageError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    unknown = [k for k in data if k not in MANIFEST_KEYS]
    if unknown:
        raise PackageError(
            f"{source}: unknown key {_show(unknown[0])} (fedn.yaml knows: {', '.join(MANIFEST_KEYS)})"
        )
    entry_points = data.get("entry_points")
    if not isinstance(entry_points, Mapping) or not entry_points:
        raise PackageError(
            f"{source}: 'entry_points' must be a non-empty mapping of name -> {{command: ...}}"
        )
    parsed: dict[str, tuple[str, ...]] = {}
    for name, spec in entry_points.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise PackageError(
                f"{source}: entry point names must be short words (letters, digits, _ . -), got {_show(name)}"
            )
        parsed[name] = _parse_command(source, name, spec)
    python_env = data.get("python_env")
    if python_env is not None:
        python_env = _package_path(source, "python_env", python_env)
    return Manifest(entry_points=parsed, python_env=python_env)


def _package_path(source: str, key: str, value: object) -> str:
    """A path named by the manifest: relative, printable, and inside the package."""
    if not isinstance(value, str) or not value.strip():
        raise PackageError(f"{source}: '{key}' must be a file name, got {_show(value)}")
    problem = name_problem(value)
    if problem:
        raise PackageError(f"{source}: '{key}' must be a path inside the package: {problem} ({_show(value)})")
    if value.endswith(("/", "\\")) or not PurePosixPath(value.replace("\\", "/")).name.strip("."):
        raise PackageError(f"{source}: '{key}' must name a file, got {_show(value)}")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text[:80] + ("…" if len(text) > 80 else "")


def _parse_command(source: str, name: str, spec: object) -> tuple[str, ...]:
    if not isinstance(spec, Mapping) or "command" not in spec:
        raise PackageError(f"{source}: entry point '{name}' must be a mapping with a 'command' key")
    extra = [k for k in spec if k not in ENTRY_POINT_KEYS]
    if extra:
        raise PackageError(f"{source}: entry point '{name}' has an unknown key {_show(extra[0])}")
    command = spec["command"]
    if not isinstance(command, str) or not command.strip():
        raise PackageError(f"{source}: entry point '{name}' has an empty or non-text command")
    if len(command) > MAX_COMMAND_CHARS:
        raise PackageError(f"{source}: entry point '{name}' command is longer than {MAX_COMMAND_CHARS}")
    bad = next((ch for ch in command if unicodedata.category(ch) == "Cc" and ch not in "\t\n"), None)
    if bad is not None:
        raise PackageError(
            f"{source}: entry point '{name}' command contains control character U+{ord(bad):04X}"
        )
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
    if not argv:
        raise PackageError(f"{source}: entry point '{name}' has an empty command")
    for arg in argv[1:]:
        if ".." in PurePosixPath(arg.replace("\\", "/")).parts or arg.startswith("/"):
            raise PackageError(
                f"{source}: entry point '{name}' names a path outside the package ({_show(arg)}); "
                "arguments must be paths inside the package"
            )
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
                f"checksum mismatch for package '{package}': expected {expected_n} ({origin}), got {actual_n}"
            )
    if normalize_checksum(configured) or normalize_checksum(server):
        return ChecksumVerdict.VERIFIED
    return ChecksumVerdict.UNVERIFIED


def safe_filename(name: str | None, fallback: str = "package.tgz") -> str:
    """A server-supplied file name reduced to a plain base name we can safely write to.

    Only the last path component survives; control characters, and characters
    Windows reserves, are dropped; leading dots go (no hidden files, no ``..``).
    """
    if not name:
        return fallback
    base = PurePosixPath(name.replace("\\", "/")).name
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*').lstrip(". ")
    return base or fallback
