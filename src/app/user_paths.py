"""A path the user gave that does not exist is the user's mistake: one line naming it, exit 2.

Every subcommand checks the paths it is given here, before any work starts, so the same
mistake reads the same and exits the same everywhere (the table is in docs/OPERATING.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..domain.errors import ConfigError
from ..domain.package import MANIFEST_NAME

_NOUN = {"dir": "directory", "file": "file", "any": "file or directory"}


def existing(path: Path, kind: Literal["dir", "file", "any"], given_as: str = "") -> Path:
    """``path`` itself, or a ConfigError such as ``--package /nonexistent: no such directory``."""
    where = f"{given_as} {path}" if given_as else str(path)
    if not path.exists():
        raise ConfigError(f"{where}: no such {_NOUN[kind]}")
    if kind == "dir" and not path.is_dir():
        raise ConfigError(f"{where}: not a directory")
    if kind == "file" and path.is_dir():
        raise ConfigError(f"{where}: a directory, not a file")
    return path


def package_dir(path: Path, given_as: str = "") -> Path:
    """A compute package directory: it exists and holds a fedn.yaml."""
    existing(path, "dir", given_as)
    if not (path / MANIFEST_NAME).is_file():
        where = f"{given_as} {path}" if given_as else str(path)
        raise ConfigError(f"{where}: no {MANIFEST_NAME} in that directory")
    return path


def output_file(path: Path | None, given_as: str) -> None:
    """A file to write later: its directory must exist now, not after minutes of work."""
    if path is not None and not path.resolve().parent.is_dir():
        raise ConfigError(f"{given_as} {path}: no such directory {path.resolve().parent}")
