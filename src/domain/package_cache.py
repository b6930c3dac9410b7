"""The last verified compute package, kept in the work dir so an unchanged one is not downloaded again.

The archive is kept as downloaded, with the SHA-256 it was verified against. It is
reused only when the server (or the settings) still expect exactly that checksum and
the kept file still hashes to it, so a file changed on disk is never run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .package import normalize_checksum

log = logging.getLogger("fedclient.package")

RECORD = "package.json"


class PackageCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def lookup(self, expected: list[str | None], sha256: Callable[[Path], str]) -> Path | None:
        """The kept archive if every expected checksum given is its own; else None."""
        wanted = {n for n in map(normalize_checksum, expected) if n}
        kept = self._record()
        if not wanted or kept is None:
            return None
        digest, archive = kept
        if wanted != {digest} or not archive.is_file():
            return None
        actual = normalize_checksum(sha256(archive))
        if actual != digest:
            log.warning("the kept copy of package %s changed on disk; downloading it again", archive.name)
            return None
        return archive

    def keep(self, archive: Path, digest: str) -> Path:
        """Move a verified ``archive`` into the cache (replacing the last one); return its new path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        kept = self.directory / archive.name
        old = self._record()
        self._write_record(None)  # never a record pointing at a half-replaced file
        os.replace(archive, kept)
        if old is not None and old[1] != kept:
            old[1].unlink(missing_ok=True)
        self._write_record((normalize_checksum(digest) or "", kept))
        return kept

    def _record(self) -> tuple[str, Path] | None:
        try:
            data = json.loads((self.directory / RECORD).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        raw, name = data.get("sha256"), data.get("file")
        digest = normalize_checksum(raw) if isinstance(raw, str) else None
        if not digest or not isinstance(name, str) or Path(name).name != name or not name:
            return None
        return digest, self.directory / name

    def _write_record(self, record: tuple[str, Path] | None) -> None:
        path = self.directory / RECORD
        if record is None:
            path.unlink(missing_ok=True)
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{RECORD}-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"sha256": record[0], "file": record[1].name}, out)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
