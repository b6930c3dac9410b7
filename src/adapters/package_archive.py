"""Compute-package archives on disk: hash, safe unpack and manifest loading.

FEDn extracts uploaded tarballs member by member with no filter and picks the format
from the file suffix (docs/PROTOCOL.md §1.5, §2.1). Here the format is sniffed from the
bytes, every member is checked by the domain rules *before* anything is written, and
we write regular files and directories ourselves instead of trusting ``extract``
(so tarfile's ``filter="data"`` of Python 3.12+ has nothing to add: no extract call
is ever made, on any Python version). With FEDN_PACKAGE_EXTRACT_DIR the checked tree is
then merged over the site's directory by ``package_merge`` (docs/SECURITY.md). Writing a
package archive is ``package_build``.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import logging
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

import yaml

from ..domain.archive_rules import MemberChecker, shown
from ..domain.errors import PackageError
from ..domain.extract_dir import MergeReport
from ..domain.package import (
    MANIFEST_NAME,
    ArchiveLimits,
    ArchiveMember,
    Manifest,
    MemberType,
    parse_manifest,
)
from .package_merge import merge_into
from .yaml_errors import yaml_problem

log = logging.getLogger("fedclient.package")

_CHUNK = 1024 * 1024
_MANIFEST_MAX_BYTES = 1024 * 1024
# Everything tarfile/zipfile and the decompressors raise on damaged input.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    RuntimeError,  # zipfile: encrypted member
    zlib.error,
    lzma.LZMAError,
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
DEFAULT_LIMITS = ArchiveLimits()


class TarPackageUnpacker:
    """The ``PackageUnpacker`` port for tar (any compression) and zip archives."""

    def __init__(self, limits: ArchiveLimits = DEFAULT_LIMITS, read_only: bool = False) -> None:
        self._limits = limits
        self._read_only = read_only

    @property
    def limits(self) -> ArchiveLimits:
        return self._limits

    def sha256(self, path: Path) -> str:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise PackageError(f"cannot read compute package '{Path(path).name}': {exc}") from None
        return digest.hexdigest()

    def unpack(self, archive: Path, dest_dir: Path) -> Path:
        """Check every member as it is read, extract into a fresh private ``dest_dir``, return the
        directory holding fedn.yaml.

        Extraction goes to a sibling staging directory (mode 0700) that replaces ``dest_dir``
        only when complete, so a failure leaves neither half a package nor a stale one.
        """
        dest_dir = Path(dest_dir)
        dest_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}-", dir=dest_dir.parent))
        try:
            self._extract(Path(archive), staging)
            if self._read_only:  # the site policy: the package's code may not change itself
                make_read_only(staging)
            _remove(dest_dir)
            os.replace(staging, dest_dir)
        except BaseException:
            with contextlib.suppress(OSError):  # the original error is the one to report
                _remove(dest_dir)  # never leave an old fedn.yaml for someone to pick up
            raise
        finally:
            with contextlib.suppress(OSError):
                _remove(staging)
        return find_package_root(dest_dir)

    def unpack_over(self, archive: Path, target: Path, record: Path) -> MergeReport:
        """FEDN_PACKAGE_EXTRACT_DIR: check every member into a staging directory, then merge it
        over ``target`` (``package_merge``), keeping the package's run-time files there.

        The staging directory is a sibling of ``target`` (one file system, so files are
        renamed into place); a refused archive never reaches ``target``.
        """
        target = Path(target)
        staging = make_staging(target, Path(record).parent)
        try:
            self._extract(Path(archive), staging)
            return merge_into(
                staging, find_package_root(staging), target, Path(record), read_only=self._read_only
            )
        finally:
            with contextlib.suppress(OSError):
                _remove(staging)

    def _extract(self, archive: Path, staging: Path) -> None:
        try:
            size = archive.stat().st_size
            with open(archive, "rb") as f:
                head = f.read(512)
        except OSError as exc:
            raise PackageError(
                f"cannot read compute package '{archive.name}': {exc.strerror or exc}"
            ) from None
        kind = sniff(head, archive.name)
        if size > self._limits.max_download_bytes:
            raise PackageError(
                f"compute package '{archive.name}' is {size} bytes, more than the download limit of "
                f"{self._limits.max_download_bytes}"
            )
        checker = MemberChecker(self._limits, archive_bytes=size)
        try:
            if kind == "zip":
                self._unpack_zip(archive, staging, checker)
            else:
                self._unpack_tar(archive, staging, checker, kind)
        except PackageError:
            raise
        except _READ_ERRORS as exc:
            raise PackageError(_damage(archive, kind, exc)) from None
        if checker.count == 0:
            raise PackageError(f"compute package '{archive.name}' is an archive with no members")

    def load_manifest(self, package_dir: Path) -> Manifest:
        path = Path(package_dir) / MANIFEST_NAME
        try:
            if path.stat().st_size > _MANIFEST_MAX_BYTES:
                raise PackageError(f"{path}: larger than {_MANIFEST_MAX_BYTES} bytes, not a manifest")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PackageError(f"the compute package has no {MANIFEST_NAME} in {package_dir}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PackageError(f"cannot read {path}: {exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PackageError(yaml_problem(MANIFEST_NAME, exc, text)) from None
        except RecursionError:
            raise PackageError(f"{MANIFEST_NAME} is nested too deeply to be a manifest") from None
        return parse_manifest(data, source=str(path))

    # ---------------------------------------------------------------- tar --

    def _unpack_tar(self, archive: Path, staging: Path, checker: MemberChecker, kind: str) -> None:
        """One pass in stream mode: each header is judged before its data is read or written.

        The decompressor is ours, not tarfile's, so that the stream is read to its end
        afterwards: that is where gzip keeps its CRC, and a corrupt stream must not pass.
        """
        budget = self._limits.unpacked_allowance(checker.archive_bytes or 0) + _HEADER_SLACK
        with open(archive, "rb") as raw, _decompressor(kind, raw) as plain:
            # Every decompressed byte counts, headers included: tarfile reads a pax header
            # or a long GNU name whole into memory, so those are bounded here as well.
            stream = _Bounded(plain, budget, archive.name)
            with tarfile.open(fileobj=stream, mode="r|") as tf:  # type: ignore[call-overload]
                for info in tf:
                    checker.check(_tar_member(info))
                    if info.isdir():
                        _make_dir(staging, info.name)
                        continue
                    src = tf.extractfile(info)
                    if src is None:  # only for non-files, which the checker refused
                        raise PackageError(f"cannot read member {shown(info.name)} of '{archive.name}'")
                    with src:
                        _write_file(staging, info.name, src, info.size, info.mode, checker)
            # Past the end-of-archive marker: padding, then the compressor's own trailer.
            while stream.read(_CHUNK):
                pass

    # ---------------------------------------------------------------- zip --

    def _unpack_zip(self, archive: Path, staging: Path, checker: MemberChecker) -> None:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > self._limits.max_members:  # the central directory says so up front
                raise PackageError(f"archive has more than the limit of {self._limits.max_members} members")
            for info in infos:
                name = _zip_name(info)
                checker.check(_zip_member(info, name))
                if info.is_dir():
                    _make_dir(staging, name)
                    continue
                if info.flag_bits & 0x1:
                    raise PackageError(f"member {shown(name)} of '{archive.name}' is encrypted")
                with zf.open(info) as src:
                    _write_file(staging, name, src, info.file_size, info.external_attr >> 16, checker)


_HEADER_SLACK = 1024 * 1024


class _Bounded:
    """A read-only stream that refuses to yield more than ``budget`` bytes in total."""

    def __init__(self, inner: IO[bytes], budget: int, name: str) -> None:
        self._inner, self._left, self._name = inner, budget, name

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._left + 1
        data = self._inner.read(min(size, self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            raise PackageError(
                f"compute package '{self._name}' expands past its size and ratio limits while being read "
                "(a decompression bomb?)"
            )
        return data


def _decompressor(kind: str, raw: IO[bytes]) -> IO[bytes]:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw, "rb")
    if kind == "xz":
        return lzma.LZMAFile(raw, "rb")
    return contextlib.nullcontext(raw)  # type: ignore[return-value]


def sniff(head: bytes, name: str = "package") -> str:
    """The archive format from its first bytes, or a PackageError saying what the file is instead."""
    if not head:
        raise PackageError(f"compute package '{name}' is an empty file, not an archive")
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    text = head.lstrip()[:15].lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        what = "an HTML/XML page (a proxy or login page?)"
    elif text.startswith((b"{", b"[")):
        what = "JSON"
    else:
        what = "not a tar or zip archive"
    raise PackageError(f"compute package '{name}' is {what}: it starts with {head[:32]!r}")


def _damage(archive: Path, kind: str, exc: BaseException) -> str:
    """A specific message for an archive that cannot be read to the end."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    lowered = reason.lower()
    truncated = isinstance(exc, EOFError) or any(
        word in lowered for word in ("unexpected end", "ended before", "truncated", "end of data")
    )
    if kind == "zip" and isinstance(exc, zipfile.BadZipFile) and "not a zip file" in lowered:
        truncated = True  # the central directory at the end is missing
    if truncated:
        return f"compute package '{archive.name}' is truncated ({kind} data ends early): {reason}"
    return f"compute package '{archive.name}' is a corrupt {kind} archive: {reason}"


def make_staging(target: Path, fallback_dir: Path) -> Path:
    """An empty private directory beside ``target`` (what a killed client left there is removed first).

    When the directory that holds ``target`` cannot be written to (a volume mounted as
    the extract dir), the staging directory goes to ``fallback_dir`` (the work dir).
    """
    name = f".{target.name}.fedclient-staging"
    try:
        return _fresh_dir(target.parent / name)
    except PermissionError:
        log.debug("cannot stage beside %s; staging in %s", target, fallback_dir)
        return _fresh_dir(fallback_dir / name)


def _fresh_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove(path)
    path.mkdir(mode=0o700)
    return path


def find_package_root(root: Path) -> Path:
    """The first directory, walking top-down in sorted order, that holds fedn.yaml."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if MANIFEST_NAME in filenames:
            return Path(dirpath)
    raise PackageError(f"the compute package has no {MANIFEST_NAME}")


# ------------------------------------------------------------ members --


def _tar_member(info: tarfile.TarInfo) -> ArchiveMember:
    if info.isreg():
        kind = MemberType.FILE
    elif info.isdir():
        kind = MemberType.DIRECTORY
    elif info.issym():
        kind = MemberType.SYMLINK
    elif info.islnk():
        kind = MemberType.HARDLINK
    elif info.ischr() or info.isblk():
        kind = MemberType.DEVICE
    elif info.isfifo():
        kind = MemberType.FIFO
    else:
        kind = MemberType.OTHER
    return ArchiveMember(info.name, kind, info.size)


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The member name as UTF-8; bytes that are not UTF-8 survive as surrogates (and are refused)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        raw = info.orig_filename.encode("cp437")  # zipfile decoded the raw bytes as cp437
    except UnicodeEncodeError:
        return info.filename
    return raw.decode("utf-8", "surrogateescape")


def _zip_member(info: zipfile.ZipInfo, name: str) -> ArchiveMember:
    mode = info.external_attr >> 16  # unix mode, when the zip was made on unix
    if stat.S_ISLNK(mode):
        kind = MemberType.SYMLINK
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = MemberType.DEVICE
    elif stat.S_ISFIFO(mode):
        kind = MemberType.FIFO
    elif info.is_dir():
        kind = MemberType.DIRECTORY
    elif stat.S_IFMT(mode) in (0, stat.S_IFREG):
        kind = MemberType.FILE
    else:
        kind = MemberType.OTHER
    return ArchiveMember(name, kind, info.file_size)


# ------------------------------------------------------------ writing --


def _target(staging: Path, name: str) -> Path | None:
    """Where a checked member goes; None for the archive root itself ("./")."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    return staging.joinpath(*parts) if parts else None


def _make_dir(staging: Path, name: str) -> None:
    target = _target(staging, name)
    if target is not None:
        _mkdirs(target)


def _mkdirs(target: Path) -> None:
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise PackageError(f"archive member '{target.name}' clashes with a file of the same name") from None


def _write_file(
    staging: Path, name: str, src: IO[bytes], size: int, mode: int, checker: MemberChecker
) -> None:
    """Write one regular file, never through a link, at most ``size`` bytes, sane permissions."""
    target = _target(staging, name)
    if target is None:
        raise PackageError(f"archive member {shown(name)} is a file without a name")
    _mkdirs(target.parent)
    if target.is_dir():
        raise PackageError(f"archive member {shown(name)} clashes with a directory of the same name")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        written = 0
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > size:
                raise PackageError(
                    f"archive member {shown(name)} holds more data than its declared {size} bytes"
                )
            checker.add_written(name, len(chunk))
            out.write(chunk)
    os.chmod(target, 0o755 if mode & 0o111 else 0o644)


def make_read_only(root: Path) -> None:
    """Files r--, directories r-x, for everyone: the package directory cannot be written to.

    Its owner (this user) could chmod it back, so this keeps honest code from changing
    the package and makes a write fail loudly; it is not a sandbox against hostile code.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o500 if _executable(dirpath, name) else 0o400)
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o500)
    os.chmod(root, 0o500)


def _executable(dirpath: str, name: str) -> bool:
    return bool(os.stat(os.path.join(dirpath, name)).st_mode & 0o100)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=_writable_then_retry)


def _writable_then_retry(_func: object, target: str, _exc: object) -> None:
    """rmtree's error hook: a read-only package directory is made writable again and retried."""
    parent = os.path.dirname(target)
    os.chmod(parent, 0o700)
    if os.path.isdir(target) and not os.path.islink(target):
        os.chmod(target, 0o700)
        shutil.rmtree(target, onerror=_writable_then_retry)
    else:
        os.unlink(target)
