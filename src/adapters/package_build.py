"""Writing a compute package: a source directory as a FEDn-style, reproducible gzip tarball.

``fedn package create`` packs a directory with ``fedn.yaml`` at the archive root and
honours ``.fednignore``; this does the same, skips links (our unpacker refuses them) and
writes byte-for-byte the same archive for the same sources, so its SHA-256 can be pinned.
"""

from __future__ import annotations

import fnmatch
import gzip
import logging
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from ..domain.errors import PackageError
from ..domain.package import MANIFEST_NAME

log = logging.getLogger("fedclient.package")


_ALWAYS_SKIP = ("__pycache__", ".venv", "*.pyc")
IGNORE_FILE = ".fednignore"


def build_package(src_dir: Path, out_path: Path) -> Path:
    """Write ``src_dir`` as a FEDn-style gzip tarball with fedn.yaml at the archive root.

    The output is byte-for-byte reproducible (sorted members, fixed owners and times,
    no gzip timestamp), so the same sources always give the same SHA-256 to pin.
    """
    src_dir, out_path = Path(src_dir), Path(out_path)
    if not (src_dir / MANIFEST_NAME).is_file():
        raise PackageError(f"{src_dir} has no {MANIFEST_NAME}; it is not a compute package")
    patterns = [*_ALWAYS_SKIP, *_read_ignore(src_dir / IGNORE_FILE)]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    skip_self = out_path.resolve()
    with (
        open(out_path, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path, rel in _walk(src_dir, patterns):
            if path.resolve() != skip_self:
                _add(tar, path, rel)
    return out_path


def _add(tar: tarfile.TarFile, path: Path, rel: str) -> None:
    info = tarfile.TarInfo(rel)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if path.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    st = path.stat()
    info.size, info.mode = st.st_size, 0o755 if st.st_mode & 0o111 else 0o644
    with open(path, "rb") as f:
        tar.addfile(info, f)


def _walk(root: Path, patterns: list[str]) -> Iterator[tuple[Path, str]]:
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if _keep(base / d, root, patterns, is_dir=True))
        for name in dirnames:
            yield base / name, (base / name).relative_to(root).as_posix()
        for name in sorted(filenames):
            path = base / name
            if _keep(path, root, patterns, is_dir=False):
                yield path, path.relative_to(root).as_posix()


def _keep(path: Path, root: Path, patterns: list[str], is_dir: bool) -> bool:
    if path.is_symlink():
        # Our own unpacker refuses links; say so now rather than at the client.
        log.warning("skipping symlink %s: compute packages may not contain links", path)
        return False
    rel = path.relative_to(root).as_posix()
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        pat = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        if fnmatch.fnmatchcase(path.name, pat) or fnmatch.fnmatchcase(rel, pat.lstrip("/")):
            return False
    return True


def _read_ignore(path: Path) -> list[str]:
    """``.fednignore``: one glob per line, ``#`` comments, a trailing ``/`` matches directories only."""
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]
