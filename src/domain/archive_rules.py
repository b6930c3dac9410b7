"""Which compute-package archive members may be written, and how much of them.

A compute package is untrusted input. Each member is judged here as its header is
read, before any of its bytes reach the disk, by a stateful ``MemberChecker`` that
also remembers every name it has seen (duplicates, names that collide on a
case-insensitive or normalising file system) and the running totals (member count,
unpacked bytes, compression ratio). The adapter streams the archive through it.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from .errors import PackageError

MiB = 1024 * 1024
# Bidirectional overrides can make a name read differently from what it is.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
MAX_NAME_CHARS = 1024
MAX_COMPONENT_BYTES = 255


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
    """Caps on what a package may be. Real packages are code and a little data: kilobytes to megabytes."""

    max_download_bytes: int = 512 * MiB
    max_members: int = 10_000
    max_member_bytes: int = 1024 * MiB
    max_total_bytes: int = 2048 * MiB
    # Unpacked bytes per archive byte; the first ``ratio_slack_bytes`` are always allowed,
    # so a tiny archive of a few text files is never refused for compressing well.
    max_ratio: float = 200.0
    ratio_slack_bytes: int = 16 * MiB

    def __post_init__(self) -> None:
        for name in ("max_download_bytes", "max_members", "max_member_bytes", "max_total_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"archive limit {name} must be positive")
        if self.max_ratio <= 0:
            raise ValueError("archive limit max_ratio must be positive")

    def unpacked_allowance(self, archive_bytes: int) -> int:
        """How many unpacked bytes an archive of ``archive_bytes`` may hold under the ratio cap."""
        return min(self.max_total_bytes, int(self.max_ratio * archive_bytes) + self.ratio_slack_bytes)


@dataclass(frozen=True)
class ArchiveMember:
    name: str
    type: MemberType
    size: int = 0


def name_problem(name: str) -> str | None:
    """Why a member name cannot be written safely, or None."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "name contains a NUL byte"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the raw bytes were not UTF-8
        return "name is not valid UTF-8"
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI:
            return f"name contains the control character U+{ord(ch):04X}"
    if len(name) > MAX_NAME_CHARS:
        return f"name is longer than {MAX_NAME_CHARS} characters"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "path escapes the target directory"
    if any(len(p.encode("utf-8")) > MAX_COMPONENT_BYTES for p in parts):
        return f"a path component is longer than {MAX_COMPONENT_BYTES} bytes"
    return None


def member_problem(member: ArchiveMember, limits: ArchiveLimits = ArchiveLimits()) -> str | None:
    """Why this member alone must not be extracted, or ``None`` if it is safe.

    Safe means: a regular file or directory whose relative path stays inside the
    target directory, with a printable UTF-8 name, within the size limit.
    """
    problem = name_problem(member.name)
    if problem:
        return problem
    if member.type not in (MemberType.FILE, MemberType.DIRECTORY):
        return f"{member.type.value} entries are not allowed"
    if member.size < 0 or member.size > limits.max_member_bytes:
        return f"member size {member.size} exceeds the per-member limit of {limits.max_member_bytes} bytes"
    return None


def normalized_path(name: str) -> str:
    """The member's path as it lands on disk: separators unified, ``.`` and trailing ``/`` dropped."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    return "/".join(parts)


@dataclass
class MemberChecker:
    """Judges members one at a time, as the archive is streamed, and keeps the running totals."""

    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    archive_bytes: int | None = None  # size of the archive file, for the ratio cap
    count: int = 0
    declared_bytes: int = 0
    written_bytes: int = 0
    _exact: dict[str, str] = field(default_factory=dict)
    _nfc: dict[str, str] = field(default_factory=dict)
    _folded: dict[str, str] = field(default_factory=dict)

    def check(self, member: ArchiveMember) -> None:
        """Raise PackageError if ``member`` may not be written (given all members seen before)."""
        self.count += 1
        if self.count > self.limits.max_members:
            raise PackageError(f"archive has more than the limit of {self.limits.max_members} members")
        problem = member_problem(member, self.limits)
        if problem:
            raise PackageError(f"unsafe archive member {shown(member.name)}: {problem}")
        self._check_collisions(member.name)
        self.declared_bytes += member.size
        self._check_total(self.declared_bytes)

    def _check_collisions(self, name: str) -> None:
        path = normalized_path(name)
        if not path:
            return  # the archive root ("./") itself
        nfc = unicodedata.normalize("NFC", path)
        folded = nfc.casefold()
        if path in self._exact:
            raise PackageError(f"unsafe archive member {shown(name)}: duplicate name")
        if nfc in self._nfc:
            raise PackageError(
                f"unsafe archive member {shown(name)}: differs from {shown(self._nfc[nfc])} "
                "only in Unicode normalisation"
            )
        if folded in self._folded:
            raise PackageError(
                f"unsafe archive member {shown(name)}: differs from {shown(self._folded[folded])} "
                "only in letter case"
            )
        self._exact[path] = name
        self._nfc[nfc] = name
        self._folded[folded] = name

    def add_written(self, name: str, nbytes: int) -> None:
        """Count bytes actually written (called per chunk while a member is extracted)."""
        self.written_bytes += nbytes
        self._check_total(self.written_bytes)

    def _check_total(self, total: int) -> None:
        if total > self.limits.max_total_bytes:
            raise PackageError(
                f"archive unpacks to more than the total limit of {self.limits.max_total_bytes} bytes"
            )
        if self.archive_bytes is not None and total > self.limits.unpacked_allowance(self.archive_bytes):
            raise PackageError(
                f"archive expands more than {self.limits.max_ratio:g} times its size of "
                f"{self.archive_bytes} bytes (a decompression bomb?)"
            )


def check_members(members: list[ArchiveMember], limits: ArchiveLimits = ArchiveLimits()) -> None:
    """Raise PackageError naming the first unsafe member, or when the archive is too large."""
    checker = MemberChecker(limits)
    for member in members:
        checker.check(member)


def shown(name: str) -> str:
    """A member name fit for a log line: control characters escaped, long names shortened."""
    text = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in name[:200])
    return f"'{text}{'…' if len(name) > 200 else ''}'"
