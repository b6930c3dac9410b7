"""The last compute package, kept in the work dir so an unchanged one is not downloaded again.

The archive is kept as downloaded, with its SHA-256 and the server's version tag
(the HTTP ETag of the download). It is reused when the server's (or the settings')
checksum is exactly that SHA-256, or, when there is no checksum to compare (FEDn
0.33's checksum route looks for the file in the wrong directory and answers 404),
when the server answers that the tagged version is still current. Either way the
kept file must still hash to the recorded SHA-256, so a copy changed on disk is never run.

These are the rules: what the record holds and when a kept copy may be used. Reading
and writing the record and moving the archive are ``adapters.package_cache``, behind
the ``PackageCache`` port (``domain.ports``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath

from .package import normalize_checksum

log = logging.getLogger("fedclient.package")

RECORD = "package.json"
# Under the work dir: the kept package and its record.
CACHE_DIR = "package-cache"


@dataclass(frozen=True)
class KeptPackage:
    archive: Path
    sha256: str
    tag: str | None  # the server's version tag of this archive, if it gave one


def read_record(data: object, directory: Path) -> KeptPackage | None:
    """The package a parsed record in ``directory`` names; None for anything malformed.

    The file name must be a bare name, so a record can never point outside ``directory``.
    """
    if not isinstance(data, dict):
        return None
    raw, name, tag = data.get("sha256"), data.get("file"), data.get("tag")
    digest = normalize_checksum(raw) if isinstance(raw, str) else None
    if not digest or not isinstance(name, str) or not name or PurePath(name).name != name:
        return None
    return KeptPackage(directory / name, digest, tag if isinstance(tag, str) and tag else None)


def record_of(archive_name: str, digest: str, tag: str | None) -> dict[str, str | None]:
    """What the record of a kept archive holds."""
    return {"sha256": normalize_checksum(digest) or "", "file": archive_name, "tag": tag}


def intact(kept: KeptPackage, sha256: Callable[[Path], str]) -> bool:
    """Whether the kept file still has the recorded hash (``sha256`` reads it)."""
    if normalize_checksum(sha256(kept.archive)) != kept.sha256:
        log.warning("the kept copy of package %s changed on disk; not using it", kept.archive.name)
        return False
    return True
