"""The site's extract dir: the package unpacked over a directory the site names, as FEDn's client does.

The stock client extracts every package over the same directory, so files its code
writes there at run time (a client-side model, prepared data) survive a restart and a
new version. fedclient keeps that, and removes what the previous version shipped and
the new one no longer does. This module is the policy only: which paths a merge removes,
what the record of shipped paths holds, and how a merge is reported. The file-system
work is ``adapters.package_merge``; the guarantees are in docs/SECURITY.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

# The record of what each extract dir last received, kept in the work dir.
RECORD_NAME = "extracted-files.json"
RECORD_VERSION = 1
_MAX_PATH_CHARS = 4096


# (size, mtime in ns) of a shipped file as it was put in place.
FileStat = tuple[int, int]


@dataclass(frozen=True)
class Shipped:
    """The relative paths (POSIX, no ``.``/``..``) a package version put into the extract dir."""

    files: frozenset[str] = frozenset()
    dirs: frozenset[str] = frozenset()
    read_only: bool = False  # the read_only_package modes were applied to the extract dir
    # Each file's FileStat when it was placed, so a merge can tell the ones the package changed.
    stats: Mapping[str, FileStat] = field(default_factory=dict, hash=False)

    def union(self, other: Shipped) -> Shipped:
        """Both versions, as recorded while a merge runs. ``other`` replaces the files it ships,
        so ``self``'s stats of those no longer describe what will be there."""
        stats = {p: s for p, s in self.stats.items() if p not in other.files}
        stats.update(other.stats)
        return Shipped(
            self.files | other.files, self.dirs | other.dirs, self.read_only or other.read_only, stats
        )


@dataclass(frozen=True)
class Stale:
    """What a merge removes: files, then directories (deepest first, each only if then empty)."""

    files: tuple[str, ...]
    dirs: tuple[str, ...]


@dataclass(frozen=True)
class MergeReport:
    """The outcome of one unpack over the extract dir."""

    target: Path
    package_dir: Path  # the directory holding fedn.yaml, inside ``target``
    written: int  # files of the package put in place
    removed: int  # files of the previous version that the new one no longer ships
    kept: int  # files in the extract dir that no version shipped: the package's run-time files
    # Files of the previous version the new one no longer ships, kept: the package changed them.
    changed: int = 0

    def describe(self) -> str:
        text = (
            f"{_count(self.written, 'file')} written, {self.removed} removed from the previous version, "
            f"{_count(self.kept, 'run-time file')} kept"
        )
        if self.changed:
            one = self.changed == 1
            text += (
                f"; kept {_count(self.changed, 'file')} the package changed since "
                f"{'it was' if one else 'they were'} shipped"
            )
        return text


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def is_safe_relative(path: str) -> bool:
    """A path a merge may touch: relative, POSIX, no empty, ``.`` or ``..`` component, no NUL."""
    if not path or len(path) > _MAX_PATH_CHARS or "\x00" in path or "\\" in path or path.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def parents(path: str) -> list[str]:
    """``a/b/c`` → ``["a", "a/b"]``: the directories a shipped file needs."""
    parts = PurePosixPath(path).parts
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def shipped_from(files: Iterable[str], dirs: Iterable[str] = (), read_only: bool = False) -> Shipped:
    """The record of one version: its files, and its directories (explicit ones and every parent)."""
    file_set = frozenset(files)
    dir_set = set(dirs)
    for name in file_set:
        dir_set.update(parents(name))
    return Shipped(file_set, frozenset(dir_set), read_only)


def unchanged(recorded: FileStat | None, size: int, mtime_ns: int) -> bool:
    """A stale shipped file is removed only if it is as it was placed: one the package changed
    (a seed model it trains in place) is its data now, and is kept, as the stock client keeps it.

    No stat recorded (a record from before stats were kept, or a merge cut short): counted
    as unchanged, so the file is removed as it always was - the record cannot tell, and the
    promise that no stale code of an old version stays behind wins.
    """
    return recorded is None or recorded == (size, mtime_ns)


def stale(previous: Shipped, new: Shipped) -> Stale:
    """What the previous version shipped and the new one does not: removed, so no old code lingers.

    A directory is only removed when it is then empty (the caller checks): one holding
    run-time files stays. One that became a file in the new version is removed like the
    rest, so the file can take its place.
    """
    files = sorted(previous.files - new.files - new.dirs)  # a file that became a directory is replaced
    dirs = sorted(previous.dirs - new.dirs, key=lambda d: (-d.count("/"), d))
    return Stale(tuple(files), tuple(dirs))


# ------------------------------------------------------------------ record --


def read_record(data: object, key: str) -> Shipped:
    """The shipped paths recorded for the extract dir ``key``; anything malformed counts as nothing.

    Every path is checked again here, because the merge removes what the record names.
    """
    if not isinstance(data, Mapping) or data.get("version") != RECORD_VERSION:
        return Shipped()
    targets = data.get("targets")
    entry = targets.get(key) if isinstance(targets, Mapping) else None
    if not isinstance(entry, Mapping):
        return Shipped()
    files = _paths(entry.get("files"))
    return Shipped(files, _paths(entry.get("dirs")), entry.get("read_only") is True, _stats(entry, files))


def _paths(value: object) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(p for p in value if isinstance(p, str) and is_safe_relative(p))


def _stats(entry: Mapping[str, object], files: frozenset[str]) -> dict[str, FileStat]:
    """The recorded stats of ``files`` (absent in records written before they were kept)."""
    value = entry.get("stats")
    if not isinstance(value, Mapping):
        return {}
    stats: dict[str, FileStat] = {}
    for path, pair in value.items():
        if path in files and isinstance(pair, list) and len(pair) == 2:
            size, mtime = pair
            if all(isinstance(n, int) and not isinstance(n, bool) for n in pair) and size >= 0:
                stats[path] = (size, mtime)
    return stats


def with_record(data: object, key: str, shipped: Shipped) -> dict[str, Any]:
    """``data`` with the entry of ``key`` replaced by ``shipped`` (other extract dirs are kept)."""
    targets: dict[str, Any] = {}
    if isinstance(data, Mapping) and data.get("version") == RECORD_VERSION:
        old = data.get("targets")
        if isinstance(old, Mapping):
            targets = {str(k): v for k, v in old.items()}
    targets[key] = {
        "files": sorted(shipped.files),
        "dirs": sorted(shipped.dirs),
        "read_only": shipped.read_only,
        # Added later under the same version: older readers ignore it, and read_record
        # tolerates its absence.
        "stats": {p: list(shipped.stats[p]) for p in sorted(shipped.stats)},
    }
    return {"version": RECORD_VERSION, "targets": targets}


def overlap(extract_dir: PurePosixPath | Path, work_dir: PurePosixPath | Path) -> bool:
    """True when one of the two (absolute, resolved) directories is, or holds, the other."""
    return extract_dir == work_dir or extract_dir in work_dir.parents or work_dir in extract_dir.parents
