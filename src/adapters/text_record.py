"""A small text record in a file, replaced atomically and fsynced with its directory (the TextRecord port)."""

from __future__ import annotations

from pathlib import Path

from .atomic_file import replace_text


class FileTextRecord:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def replace(self, text: str) -> None:
        replace_text(self.path, text, sync_dir=True)
