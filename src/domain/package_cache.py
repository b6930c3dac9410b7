"""The last compute package, kept in the work dir so an unchanged one is not downloaded again.

The archive is kept as downloaded, with its SHA-256 and the server's version tag
(the HTTP ETag of the download). It is reused when the server's (or the settings')
checksum is exactly that SHA-256, or, when there is no checksum to compare (FEDn
0.33's checksum route looks for the file in the wrong directory and answers 404),
when the server answers that the tagged version is still current. Either way the
kept file must still hash to the recorded SHA-256, so a copy changed on disk is never run.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .atomic_file import replace_text
from .package import normalize_checksum

log = logging.getLogger("fedclient.package")

RECORD = "package.json"


@dataclass(frozen=True)
class KeptPackage:
    archive: Path
    sha256: str
    tag: str | None  # the server's version tag of this archive, if it gave one


class PackageCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def lookup(self, sha256: Callable[[Path], str]) -> KeptPackage | None:
        """The kept package, if there is one and its file still has the recorded hash."""
        kept = self._record()
        if kept is None or not kept.archive.is_file():
            return None
        if normalize_checksum(sha256(kept.archive)) != kept.sha256:
            log.warning("the kept copy of package %s changed on disk; not using it", kept.archive.name)
            return None
        return kept

    def keep(self, archive: Path, digest: str, tag: str | None) -> Path:
        """Move ``archive`` into the cache (replacing the last one); return its new path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        kept = self.directory / archive.name
        old = self._record()
        (self.directory / RECORD).unlink(missing_ok=True)  # never a record for a half-replaced file
        os.replace(archive, kept)
        if old is not None and old.archive != kept:
            old.archive.unlink(missing_ok=True)
        self._write(KeptPackage(kept, normalize_checksum(digest) or "", tag))
        return kept

    def _record(self) -> KeptPackage | None:
        try:
            data = json.loads((self.directory / RECORD).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        raw, name, tag = data.get("sha256"), data.get("file"), data.get("tag")
        digest = normalize_checksum(raw) if isinstance(raw, str) else None
        if not digest or not isinstance(name, str) or not name or Path(name).name != name:
            return None
        return KeptPackage(self.directory / name, digest, tag if isinstance(tag, str) and tag else None)

    def _write(self, kept: KeptPackage) -> None:
        record = {"sha256": kept.sha256, "file": kept.archive.name, "tag": kept.tag}
        replace_text(self.directory / RECORD, json.dumps(record))
