"""Unpacking over the site's extract dir (FEDN_PACKAGE_EXTRACT_DIR): a checked staging tree merged in.

By the time this runs, the archive has been extracted member by member, under every
archive rule, into a staging directory of our own (``package_archive``), so nothing here
reads archive data. What is left is the file-system work ``domain.extract_dir`` decides:
put the package's files in place, remove what the previous version shipped and this one
does not, keep everything else (the package's run-time files), apply the
read_only_package modes, and record what was shipped.

The target may hold anything the package's code left there, links included. Every path
in it is walked one component at a time through directory descriptors opened with
O_NOFOLLOW, and files are replaced by ``rename`` and removed by ``unlink`` of the name,
so a symlink is replaced or removed as a link, never followed out of the target; mode
changes skip links and files with other hard links. docs/SECURITY.md has the guarantees.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import uuid
from dataclasses import replace
from pathlib import Path

from ..domain.errors import PackageError
from ..domain.extract_dir import (
    FileStat,
    MergeReport,
    Shipped,
    Stale,
    read_record,
    shipped_from,
    stale,
    unchanged,
    with_record,
)
from .atomic_file import replace_text

log = logging.getLogger("fedclient.package")

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_NOT_A_DIR = (errno.ENOTDIR, errno.ELOOP, errno.ENOENT)
_CHUNK = 1024 * 1024
_PYCACHE = "__pycache__"


def merge_into(
    staging: Path, package_root: Path, target: Path, record: Path, read_only: bool = False
) -> MergeReport:
    """Merge the checked tree ``staging`` into ``target``; ``record`` keeps what each version shipped.

    ``package_root`` is the directory of ``staging`` holding fedn.yaml, found by the caller
    in what was shipped (never among run-time files). Before anything in ``target``
    changes, the package is known to fit (``_refuse_conflicts``): nothing the merge would
    have to delete to put it in place is anything but the previous version's, unchanged.
    """
    shipped = _shipped(staging, read_only)
    key = str(target.resolve())
    data = _load(record)
    previous = read_record(data, key)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = os.open(target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        _refuse_conflicts(root, shipped, previous, target)
        # Recorded as both versions first: a merge cut short is cleaned up by the next one.
        _save(record, with_record(data, key, previous.union(shipped)))
        _owner_writable(root)
        removed, changed = _remove_stale(root, stale(previous, shipped), previous)
        placed: dict[str, FileStat] = {}
        src = os.open(staging, _DIR_FLAGS)
        try:
            written = _place_tree(src, root, "", placed)
        finally:
            os.close(src)
        if previous.read_only and not read_only:  # the policy was turned off: writable again
            _apply_modes(root, previous, read_only=False)
            _owner_writable(root)
        kept = _count_others(root, "", shipped.files) - changed
        if read_only:
            _apply_modes(root, shipped, read_only=True)
            os.fchmod(root, 0o500)
        _save(record, with_record(data, key, replace(shipped, stats=placed)))
    finally:
        os.close(root)
    return MergeReport(target, target / package_root.relative_to(staging), written, removed, kept, changed)


# ------------------------------------------------------------- shipped --


def _shipped(staging: Path, read_only: bool) -> Shipped:
    files: list[str] = []
    dirs: list[str] = []
    for dirpath, dirnames, filenames in os.walk(staging):  # our own tree: files and directories only
        base = Path(dirpath).relative_to(staging)
        dirs.extend((base / d).as_posix() for d in dirnames)
        files.extend((base / f).as_posix() for f in filenames)
    return shipped_from(files, dirs, read_only)


def _refuse_conflicts(root: int, shipped: Shipped, previous: Shipped, target: Path) -> None:
    """Refused before any change: what the package would have to delete that is not its own.

    A directory where the package has a file is fine if only the previous version's files
    are in it (they are removed as stale first); a file or link where the package has a
    directory is fine if the previous version shipped it as a file. Anything else there is
    the site's or a run-time file, and the stock client's unpack fails there too.
    """
    for rel in sorted(shipped.dirs):
        *parents, leaf = rel.split("/")
        fd = _open_existing(root, parents)
        if fd is None:  # a step is missing (created) or not a directory (checked at that step)
            continue
        try:
            st = _lstat(fd, leaf)
        finally:
            os.close(fd)
        if st is not None and not stat.S_ISDIR(st.st_mode) and not _replaceable_file(st, rel, previous):
            raise PackageError(
                f"cannot unpack the package into {target}: {rel} is a file or link there and a directory "
                "in the package; move it away"
            )
    for rel in sorted(shipped.files):
        fd = _open_existing(root, rel.split("/"))
        if fd is None:  # nothing there, or a file or link: the package's file replaces it
            continue
        try:
            replaceable = rel in previous.dirs and _only_shipped(fd, f"{rel}/", previous)
        finally:
            os.close(fd)
        if not replaceable:
            raise PackageError(
                f"cannot unpack the package into {target}: {rel} is a directory there and a file in the "
                "package; move the directory away"
            )


def _only_shipped(fd: int, prefix: str, previous: Shipped) -> bool:
    """Nothing under ``fd`` but the previous version's files and directories (and bytecode caches)."""
    for name, is_dir, _ in _entries(fd):
        rel = f"{prefix}{name}"
        if is_dir and _bytecode_cache(fd, name):
            continue
        if not is_dir:
            st = _lstat(fd, name)
            if st is not None and not _replaceable_file(st, rel, previous):
                return False
            continue
        sub = _open_existing(fd, [name]) if rel in previous.dirs else None
        if sub is None:
            return False
        try:
            if not _only_shipped(sub, f"{rel}/", previous):
                return False
        finally:
            os.close(sub)
    return True


def _replaceable_file(st: os.stat_result, rel: str, previous: Shipped) -> bool:
    """A file or link the previous version shipped at ``rel``, not changed since (links hold no data)."""
    return rel in previous.files and not _changed(st, previous.stats.get(rel))


def _changed(st: os.stat_result, recorded: FileStat | None) -> bool:
    """A regular file that is not as the merge placed it: the package wrote to it."""
    return stat.S_ISREG(st.st_mode) and not unchanged(recorded, st.st_size, st.st_mtime_ns)


def _bytecode_cache(parent: int, name: str) -> bool:
    """``name`` is Python's cache of the modules beside it: a real ``__pycache__`` directory
    holding only ``.pyc`` files (and leftovers of an interrupted write of one). Disposable:
    the next import writes it again."""
    if name != _PYCACHE:
        return False
    fd = _open_existing(parent, [name])
    if fd is None:
        return False
    try:
        return all(not is_dir and not is_link and _is_pyc(n) for n, is_dir, is_link in _entries(fd))
    finally:
        os.close(fd)


def _is_pyc(name: str) -> bool:
    return name.endswith(".pyc") or ".pyc." in name


def _remove_bytecode_cache(parent: int) -> None:
    """Unlink the ``.pyc`` files of ``parent``'s ``__pycache__`` (checked by ``_bytecode_cache``), then it."""
    fd = _open_existing(parent, [_PYCACHE], writable=True)
    if fd is None:
        return
    try:
        for name, is_dir, _ in _entries(fd):
            if not is_dir:
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(_PYCACHE, dir_fd=parent)


# ------------------------------------------------------------- walking --


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _open_existing(root: int, parts: list[str], writable: bool = False) -> int | None:
    """The real directory at ``parts`` under ``root``, or None if any step is missing, a file or a link."""
    fd = os.dup(root)
    try:
        for part in parts:
            try:
                step = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in _NOT_A_DIR:
                    os.close(fd)
                    return None
                raise
            os.close(fd)
            fd = step
        if writable:
            _owner_writable(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _owner_writable(fd: int) -> None:
    """Directories a merge changes need u+rwx (the read_only_package modes took it away)."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & stat.S_IRWXU != stat.S_IRWXU:
        os.fchmod(fd, mode | stat.S_IRWXU)


def _entries(fd: int) -> list[tuple[str, bool, bool]]:
    """(name, is a real directory, is a link) for each entry of the directory ``fd``."""
    with os.scandir(fd) as it:
        return sorted((e.name, e.is_dir(follow_symlinks=False), e.is_symlink()) for e in it)


# ------------------------------------------------------------- placing --


def _place_tree(src: int, dst: int, prefix: str, placed: dict[str, FileStat]) -> int:
    """Move the staged tree ``src`` into ``dst``; ``placed`` gets each file's stat as it lies there."""
    written = 0
    for name, is_dir, _ in _entries(src):
        if is_dir:
            sub_src = os.open(name, _DIR_FLAGS, dir_fd=src)
            try:
                sub_dst = _ensure_dir(dst, name)
                try:
                    written += _place_tree(sub_src, sub_dst, f"{prefix}{name}/", placed)
                finally:
                    os.close(sub_dst)
            finally:
                os.close(sub_src)
        else:
            _place_file(src, dst, name)
            st = os.stat(name, dir_fd=dst, follow_symlinks=False)
            placed[f"{prefix}{name}"] = (st.st_size, st.st_mtime_ns)
            written += 1
    return written


def _ensure_dir(parent: int, name: str) -> int:
    """The real directory ``name`` in ``parent``: a file or link in its way is removed.

    Only one the previous version shipped as a file can be there: ``_refuse_conflicts``
    refused the merge for anything else.
    """
    st = _lstat(parent, name)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent)
        st = None
    if st is None:
        os.mkdir(name, 0o700, dir_fd=parent)
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        _owner_writable(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _place_file(src: int, dst: int, name: str) -> None:
    """Rename the staged file over its name in ``dst``: a file or link there is replaced, not written to."""
    try:
        os.replace(name, name, src_dir_fd=src, dst_dir_fd=dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # the target (or a directory in it) is another mount
            raise
        _copy_across(src, dst, name)


def _copy_across(src: int, dst: int, name: str) -> None:
    """Copy into a fresh name beside the destination, then rename it over: still never through a link."""
    tmp = f".fedclient-{uuid.uuid4().hex}"
    source = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=src)
    try:
        mode = stat.S_IMODE(os.fstat(source).st_mode)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        out = os.open(tmp, flags, mode, dir_fd=dst)
        try:
            with os.fdopen(out, "wb") as writer, os.fdopen(os.dup(source), "rb") as reader:
                while chunk := reader.read(_CHUNK):
                    writer.write(chunk)
            os.replace(tmp, name, src_dir_fd=dst, dst_dir_fd=dst)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dst)
            raise
    finally:
        os.close(source)


# ------------------------------------------------------------ removing --


def _remove_stale(root: int, removing: Stale, previous: Shipped) -> tuple[int, int]:
    """Unlink what only the previous version shipped: (removed, kept because the package changed it).

    A directory there now is the package's own, and so is a file it wrote to since it was
    placed (``domain.extract_dir.unchanged``).
    """
    removed = changed = 0
    for rel in removing.files:
        *parents, leaf = rel.split("/")
        fd = _open_existing(root, parents)
        if fd is None:
            continue
        try:
            st = _lstat(fd, leaf)
            if st is None or stat.S_ISDIR(st.st_mode):
                continue
            if _changed(st, previous.stats.get(rel)):
                changed += 1
                continue
            _owner_writable(fd)
            os.unlink(leaf, dir_fd=fd)
            removed += 1
        finally:
            os.close(fd)
    for rel in removing.dirs:  # deepest first; one that holds run-time files stays
        *parents, leaf = rel.split("/")
        fd = _open_existing(root, parents, writable=True)
        if fd is None:
            continue
        try:
            _drop_lone_bytecode_cache(fd, leaf)
            st = _lstat(fd, leaf)
            if st is not None and stat.S_ISDIR(st.st_mode):
                with contextlib.suppress(OSError):
                    os.rmdir(leaf, dir_fd=fd)
        finally:
            os.close(fd)
    return removed, changed


def _drop_lone_bytecode_cache(parent: int, name: str) -> None:
    """A stale directory holding nothing but its ``__pycache__``: the cache goes, so the directory can."""
    fd = _open_existing(parent, [name])
    if fd is None:
        return
    try:
        if [e[0] for e in _entries(fd)] == [_PYCACHE] and _bytecode_cache(fd, _PYCACHE):
            _owner_writable(fd)
            _remove_bytecode_cache(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------ counting --


def _count_others(fd: int, prefix: str, shipped: frozenset[str]) -> int:
    """Entries (not directories) under ``fd`` that the package did not ship: its run-time files."""
    count = 0
    for name, is_dir, _ in _entries(fd):
        rel = f"{prefix}{name}"
        if is_dir:
            sub = _open_existing(fd, [name])
            if sub is not None:
                try:
                    count += _count_others(sub, f"{rel}/", shipped)
                finally:
                    os.close(sub)
        elif rel not in shipped:
            count += 1
    return count


# --------------------------------------------------------------- modes --


def _apply_modes(root: int, paths: Shipped, read_only: bool) -> None:
    """read_only: the shipped files r-- (r-x if executable), the shipped directories r-x; else
    give the owner write back on them. The caller sets the root's own mode.

    Only what ``paths`` names is changed (the package's files and the directories holding
    them): whatever else is in the target - the package's run-time files, the site's own
    files when the extract dir is the start dir - keeps its modes. Links are skipped (never
    followed), and so are files with more than one hard link (the same inode is somewhere
    else too, so it is not only the package's).
    """
    for rel in sorted(paths.files):
        *parents, leaf = rel.split("/")
        fd = _open_existing(root, parents)
        if fd is None:
            continue
        try:
            _chmod_file(fd, leaf, read_only)
        finally:
            os.close(fd)
    for rel in sorted(paths.dirs):
        fd = _open_existing(root, rel.split("/"))
        if fd is None:  # gone, or a file or link there now
            continue
        try:
            if read_only:
                os.fchmod(fd, 0o500)
            else:
                _owner_writable(fd)
        finally:
            os.close(fd)


def _file_mode(st: os.stat_result, read_only: bool) -> int | None:
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if read_only:
        return 0o500 if mode & stat.S_IXUSR else 0o400
    return mode | stat.S_IWUSR if not mode & stat.S_IWUSR else None


def _chmod_file(dir_fd: int, name: str, read_only: bool) -> None:
    o_path = getattr(os, "O_PATH", None)
    if o_path is not None and os.path.isdir("/proc/self/fd"):
        # A descriptor of the name itself (O_PATH|O_NOFOLLOW): what is checked is what is changed.
        try:
            fd = os.open(name, o_path | os.O_NOFOLLOW, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        try:
            mode = _file_mode(os.fstat(fd), read_only)
            if mode is not None:
                os.chmod(f"/proc/self/fd/{fd}", mode)
        finally:
            os.close(fd)
        return
    st = _lstat(dir_fd, name)  # pragma: no cover - no O_PATH: nothing else runs in the locked dir now
    mode = _file_mode(st, read_only) if st is not None else None
    if mode is not None:
        os.chmod(name, mode, dir_fd=dir_fd)


# -------------------------------------------------------------- record --


def _load(record: Path) -> object:
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning(
            "%s cannot be read (%s): files of the previous package version will be kept as run-time files",
            record,
            exc,
        )
        return None


def _save(record: Path, data: object) -> None:
    """Written atomically: a crash leaves the old record or the new one, never half of one."""
    replace_text(record, json.dumps(data, indent=1))
