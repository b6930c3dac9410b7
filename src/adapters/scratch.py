"""Scratch directories on disk for the domain's ``Scratch`` port: one private temp dir per task."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


class TempScratch:
    def make(self, parent: Path, prefix: str) -> Path:
        """A new private directory (mode 0700) in ``parent``, which is created if missing."""
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))

    def remove(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
