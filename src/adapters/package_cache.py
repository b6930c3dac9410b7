"""The kept compute package on disk: ``<work dir>/package-cache/`` holds the archive and its record.

The rules (what the record holds, when a kept copy may be used) are ``domain.package_cache``;
this is the file work behind the domain's ``PackageCache`` port. The record is replaced
atomically, and removed before the archive is, so it never names a half-replaced file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..domain.package_cache import RECORD, KeptPackage, read_record, record_of
from .atomic_file import replace_text


class DiskPackageCache:
    def lookup(self, directory: Path) -> KeptPackage | None:
        """The package the record names, if the record is sound and the file is still there."""
        kept = _record(directory)
        if kept is None or not kept.archive.is_file():
            return None
        return kept

    def keep(self, directory: Path, archive: Path, sha256: str, tag: str | None) -> Path:
        """Move ``archive`` into ``directory`` (replacing the last one); return its new path."""
        directory.mkdir(parents=True, exist_ok=True)
        kept = directory / archive.name
        old = _record(directory)
        (directory / RECORD).unlink(missing_ok=True)  # never a record for a half-replaced file
        os.replace(archive, kept)
        if old is not None and old.archive != kept:
            old.archive.unlink(missing_ok=True)
        replace_text(directory / RECORD, json.dumps(record_of(kept.name, sha256, tag)))
        return kept

    def discard(self, archive: Path) -> None:
        """Remove a download that is not kept (gone already is fine)."""
        archive.unlink(missing_ok=True)


def _record(directory: Path) -> KeptPackage | None:
    try:
        data = json.loads((directory / RECORD).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return read_record(data, directory)
