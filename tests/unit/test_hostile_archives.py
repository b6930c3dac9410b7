"""Hostile compute packages, one kind per case: each is refused with its own message, and the
file system shows that nothing was written outside the extraction root and nothing was left.

Every case builds a real archive on disk, unpacks it with the real unpacker into
``<tmp>/work/packages/v1``, and then walks the whole temporary tree (and the sentinel
paths a traversal would reach) to prove the refusal left no trace.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import unicodedata
import uuid
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from fedclient.adapters.package_archive import TarPackageUnpacker
from fedclient.domain.errors import PackageError
from fedclient.domain.package import ArchiveLimits

FEDN_YAML = b"entry_points:\n  train:\n    command: python train.py\n"
TAG = uuid.uuid4().hex[:8]
ESCAPE_NAME = f"fedclient-escape-{TAG}.txt"  # where a traversal would land, outside the root
ABSOLUTE = f"/tmp/fedclient-absolute-{TAG}.txt"

Build = Callable[[Path], Path]


def _info(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def tar_of(
    *members: tuple[tarfile.TarInfo, bytes], mode: str = "w:gz", fmt: int = tarfile.PAX_FORMAT
) -> Build:
    """A tgz holding a valid fedn.yaml first, then ``members``."""

    def build(path: Path) -> Path:
        with tarfile.open(path, mode, format=fmt, encoding="utf-8", errors="surrogateescape") as tf:  # type: ignore[call-overload]
            tf.addfile(_info("fedn.yaml", data=FEDN_YAML), io.BytesIO(FEDN_YAML))
            for info, data in members:
                tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
        return path

    return build


def member(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, data=data), data


def zip_of(*members: tuple[str, bytes], patch: Callable[[bytes], bytes] = lambda b: b) -> Build:
    def build(path: Path) -> Path:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicates we mean to write
            zf.writestr("fedn.yaml", FEDN_YAML)
            for name, data in members:
                zf.writestr(name, data)
        path.write_bytes(patch(buf.getvalue()))
        return path

    return build


def zip_symlink(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fedn.yaml", FEDN_YAML)
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    return path


def raw_bytes(data: bytes) -> Build:
    def build(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return build


def truncated(inner: Build, keep: float) -> Build:
    def build(path: Path) -> Path:
        inner(path)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        return path

    return build


def corrupted(inner: Build) -> Build:
    def build(path: Path) -> Path:
        inner(path)
        data = bytearray(path.read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))
        return path

    return build


def zeros_bomb(path: Path) -> Path:
    """40 MiB of zeros in a ~40 KiB tgz: a ratio of ~1000, far past the default cap of 200."""
    size = 40 * 1024 * 1024
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tf:
        tf.addfile(_info("fedn.yaml", data=FEDN_YAML), io.BytesIO(FEDN_YAML))
        info = _info("zeros.bin")
        info.size = size

        class Zeros(io.RawIOBase):
            left = size

            def readinto(self, b: bytearray) -> int:  # type: ignore[override]
                n = min(len(b), self.left)
                b[:n] = bytes(n)
                self.left -= n
                return n

        tf.addfile(info, Zeros())
    return path


def pax_header_bomb(path: Path) -> Path:
    """A member whose pax header alone is 40 MiB (tarfile would hold it in memory whole)."""
    with (
        gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf,
    ):
        tf.addfile(_info("fedn.yaml", data=FEDN_YAML), io.BytesIO(FEDN_YAML))
        info = _info("x.py", data=b"x", pax_headers={"comment": "A" * (40 * 1024 * 1024)})
        tf.addfile(info, io.BytesIO(b"x"))
    return path


def zip_lying_size(path: Path) -> Path:
    """A zip member whose headers say 10 bytes but whose stream inflates to 5 MiB."""
    buf = io.BytesIO()
    payload = b"\x00" * (5 * 1024 * 1024)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fedn.yaml", FEDN_YAML)
        zf.writestr("liar.bin", payload)
    data = bytearray(buf.getvalue())
    size = len(payload).to_bytes(4, "little")
    # Rewrite the uncompressed size in the local header and the central directory.
    start = 0
    while (i := data.find(size, start)) != -1:
        data[i : i + 4] = (10).to_bytes(4, "little")
        start = i + 4
    path.write_bytes(bytes(data))
    return path


def zip_raw_name(raw: bytes) -> Build:
    """A zip whose member name is the raw bytes ``raw`` with the UTF-8 flag off."""
    placeholder = b"Q" * len(raw)
    return zip_of((placeholder.decode(), b"x"), patch=lambda b: b.replace(placeholder, raw))


def zip_encrypted(path: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fedn.yaml", FEDN_YAML)
        zf.writestr("secret.bin", b"x")
    data = bytearray(buf.getvalue())
    # Set bit 0 (encrypted) of the general-purpose flags of the second member's headers.
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(sig, data.find(sig) + 1)
        data[i + offset] |= 0x01
    path.write_bytes(bytes(data))
    return path


def empty_tar(path: Path) -> Path:
    with tarfile.open(path, "w:gz"):
        pass
    return path


NFC = unicodedata.normalize("NFC", "café.py")
NFD = unicodedata.normalize("NFD", "café.py")
SMALL = ArchiveLimits(max_members=5, max_member_bytes=1000, max_total_bytes=1500, max_download_bytes=4000)

# kind -> (archive builder, expected message fragment, limits or None for the defaults)
CASES: dict[str, tuple[Build, str, ArchiveLimits | None]] = {
    "absolute path": (tar_of(member(ABSOLUTE)), "absolute path", None),
    "dot-dot traversal": (tar_of(member(f"../{ESCAPE_NAME}")), "escapes the target", None),
    "nested dot-dot": (tar_of(member(f"a/b/../../../{ESCAPE_NAME}")), "escapes the target", None),
    "backslash dot-dot": (tar_of(member(f"..\\{ESCAPE_NAME}")), "escapes the target", None),
    "windows drive": (tar_of(member("C:\\evil.txt")), "absolute path", None),
    "symlink": (tar_of((_info("link", tarfile.SYMTYPE, linkname="/etc"), b"")), "symlink entries", None),
    "symlink then write through it": (
        tar_of((_info("d", tarfile.SYMTYPE, linkname=".."), b""), member(f"d/{ESCAPE_NAME}")),
        "symlink entries",
        None,
    ),
    "hardlink": (
        tar_of((_info("hard", tarfile.LNKTYPE, linkname="/etc/passwd"), b"")),
        "hardlink entries",
        None,
    ),
    "character device": (
        tar_of((_info("null", tarfile.CHRTYPE, devmajor=1, devminor=3), b"")),
        "device entries",
        None,
    ),
    "block device": (
        tar_of((_info("sda", tarfile.BLKTYPE, devmajor=8, devminor=0), b"")),
        "device entries",
        None,
    ),
    "fifo": (tar_of((_info("pipe", tarfile.FIFOTYPE), b"")), "fifo entries", None),
    "terminal escape in name": (tar_of(member("\x1b[2J\x1b]0;pwned\x07.py")), "control character", None),
    "newline in name": (tar_of(member("a\nb.py")), "control character U+000A", None),
    "bidi override in name": (tar_of(member("evil\u202eyp.txt")), "control character U+202E", None),
    "tar name not UTF-8": (
        tar_of(member("bad-\udcff.py"), fmt=tarfile.GNU_FORMAT),
        "not valid UTF-8",
        None,
    ),
    "zip name not UTF-8": (zip_raw_name(b"bad-\xff\xfe.py"), "not valid UTF-8", None),
    "duplicate name (tar)": (tar_of(member("fedn.yaml", b"entry_points: {}\n")), "duplicate name", None),
    "duplicate name (zip)": (zip_of(("a.py", b"1"), ("a.py", b"2")), "duplicate name", None),
    "duplicate via ./ prefix": (tar_of(member("./fedn.yaml")), "duplicate name", None),
    "case collision": (tar_of(member("Train.py"), member("train.PY")), "only in letter case", None),
    "unicode normalisation collision": (
        tar_of(member(NFC), member(NFD)),
        "only in Unicode normalisation",
        None,
    ),
    "component longer than 255 bytes": (tar_of(member("a" * 300)), "longer than 255 bytes", None),
    "member over the per-member cap": (
        tar_of(member("big.bin", b"x" * 1001)),
        "per-member limit",
        SMALL,
    ),
    "too many members": (tar_of(*[member(f"f{i}") for i in range(6)]), "limit of 5 members", SMALL),
    "total over the unpacked cap": (
        tar_of(*[member(f"f{i}", b"x" * 900) for i in range(2)]),
        "total limit of 1500 bytes",
        SMALL,
    ),
    "decompression bomb (ratio)": (zeros_bomb, "expands more than 200 times", None),
    "pax header bomb": (pax_header_bomb, "expands past its size and ratio limits", None),
    # zipfile reads only the declared size, so the lie shows up as a CRC mismatch.
    "zip member lying about its size": (zip_lying_size, "corrupt zip archive: Bad CRC-32", None),
    "download over the cap": (tar_of(member("pad.bin", os.urandom(6000))), "download limit", SMALL),
    "file where a directory is needed": (
        tar_of(member("lib"), member("lib/x.py")),
        "clashes with a file",
        None,
    ),
    "zip symlink": (zip_symlink, "symlink entries", None),
    "zip absolute path": (zip_of((ABSOLUTE, b"x")), "absolute path", None),
    "zip dot-dot": (zip_of((f"../{ESCAPE_NAME}", b"x")), "escapes the target", None),
    "zip encrypted member": (zip_encrypted, "encrypted", None),
    "truncated tgz": (truncated(tar_of(member("x.bin", os.urandom(20000))), 0.5), "truncated", None),
    "truncated zip": (truncated(zip_of(("x.bin", os.urandom(20000))), 0.5), "truncated", None),
    "corrupt gzip stream": (corrupted(tar_of(member("x.bin", os.urandom(20000)))), "corrupt gzip", None),
    "corrupt bzip2 stream": (
        corrupted(tar_of(member("x.bin", os.urandom(20000)), mode="w:bz2")),
        "bzip2",
        None,
    ),
    "corrupt xz stream": (
        corrupted(tar_of(member("x.bin", os.urandom(20000)), mode="w:xz")),
        "xz",
        None,
    ),
    "not an archive": (raw_bytes(b"#!/bin/sh\nrm -rf ~\n"), "not a tar or zip archive", None),
    "HTML page": (raw_bytes(b"<!DOCTYPE html><html><body>Sign in</body></html>"), "HTML", None),
    "JSON error body": (raw_bytes(b'{"message": "no package"}'), "is JSON", None),
    "empty file": (raw_bytes(b""), "empty file", None),
    "archive with no members": (empty_tar, "no members", None),
}


def _tree(root: Path) -> set[str]:
    return {str(Path(d, n).relative_to(root)) for d, ds, fs in os.walk(root) for n in ds + fs}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_hostile_archive_is_refused_and_leaves_nothing(tmp_path: Path, kind: str) -> None:
    build, message, limits = CASES[kind]
    archive = build(tmp_path / "pkg.tgz")
    work = tmp_path / "work" / "packages"
    work.mkdir(parents=True)
    before = _tree(tmp_path)
    unpacker = TarPackageUnpacker(limits) if limits else TarPackageUnpacker()

    with pytest.raises(PackageError) as refused:
        unpacker.unpack(archive, work / "v1")

    assert message in str(refused.value)
    assert "\x1b" not in str(refused.value) and "\n" not in str(refused.value)
    assert _tree(tmp_path) == before  # no staging dir, no destination, no stray file
    assert not (tmp_path / ESCAPE_NAME).exists() and not (tmp_path / "work" / ESCAPE_NAME).exists()
    assert not Path(ABSOLUTE).exists()


def test_there_are_at_least_25_hostile_kinds() -> None:
    assert len(CASES) >= 25


def test_the_same_archive_without_the_hostile_member_unpacks_private(tmp_path: Path) -> None:
    """The control case: the builders make valid archives apart from the hostile part."""
    root = TarPackageUnpacker().unpack(tar_of(member("train.py"))(tmp_path / "ok.tgz"), tmp_path / "v1")
    assert (root / "train.py").read_bytes() == b"x"
    assert (tmp_path / "v1").stat().st_mode & 0o777 == 0o700


def test_read_only_package_cannot_be_written_and_is_still_replaced(tmp_path: Path) -> None:
    unpacker = TarPackageUnpacker(read_only=True)
    archive = tar_of(member("train.py"))(tmp_path / "ok.tgz")
    root = unpacker.unpack(archive, tmp_path / "v1")
    assert root.stat().st_mode & 0o777 == 0o500 and (root / "train.py").stat().st_mode & 0o777 == 0o400
    if os.geteuid() != 0:  # root ignores file modes
        with pytest.raises(PermissionError):
            (root / "new.txt").write_text("x")
        with pytest.raises(PermissionError):
            (root / "train.py").write_text("changed")
    assert unpacker.unpack(archive, tmp_path / "v1") == root  # a read-only tree is replaced cleanly
