"""The outbox's stores (the domain's ``OutboxStore`` port).

``FileOutboxStore`` is the outbox on disk: one ``<key>.json`` per result, and ``<key>.model``
beside it for an update. Writes are crash-safe: each file is written under a temporary
name, fsynced, renamed into place, and the directory fsynced. The ``.json`` is written
last and removed first, so its presence means the entry is complete; a model file
without one is the leftover of a crash and is swept at load.

The entries' format is ``outbox_format``'s (it reads what earlier versions wrote too).

``ProcessOutboxStore`` keeps the entries in memory and only the model files on disk: it
survives reconnects, not restarts (for simulations and embedding).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from ..domain.outbox import OutboxEntry
from .outbox_format import entry_from_json, entry_to_json

log = logging.getLogger("fedclient.outbox")
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class FileOutboxStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str, suffix: str) -> Path:
        if not _SAFE_KEY.match(key):
            raise ValueError(f"unusable outbox key {key!r}")
        return self.directory / f"{key}{suffix}"

    def model_file(self, key: str) -> Path:
        return self._path(key, ".model")

    def save(self, entry: OutboxEntry, model: Path | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if model is not None:
            target = self.model_file(entry.key)
            temp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(model, temp)
            _fsync_file(temp)
            os.replace(temp, target)
        target = self._path(entry.key, ".json")
        temp = target.with_name(f".{target.name}.tmp")
        with temp.open("w", encoding="utf-8") as out:
            json.dump(entry_to_json(entry), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
        _fsync_dir(self.directory)

    def load(self) -> list[OutboxEntry]:
        if not self.directory.is_dir():
            return []
        entries: list[OutboxEntry] = []
        keys: set[str] = set()
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write a crash cut short
                continue
            if path.suffix != ".json":
                continue
            try:
                entry = entry_from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("outbox: discarding unreadable entry %s: %s", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            entries.append(entry)
            keys.add(entry.key)
        for path in self.directory.glob("*.model"):
            if path.stem not in keys:
                log.info("outbox: removing model file %s left without an entry", path.name)
                path.unlink(missing_ok=True)
        return entries

    def remove(self, key: str) -> None:
        self._path(key, ".json").unlink(missing_ok=True)
        self.model_file(key).unlink(missing_ok=True)
        if self.directory.is_dir():
            _fsync_dir(self.directory)


class ProcessOutboxStore:
    """An outbox that lives as long as the process: survives reconnects, not restarts.

    For clients that need no durable outbox (``fedclient simulate``); ``fedclient run``
    uses ``FileOutboxStore``.
    """

    def __init__(self, model_dir: Path, prefix: str = "") -> None:
        """Models go to ``model_dir``; ``prefix`` lets many clients share one (no dir each)."""
        self.model_dir = model_dir
        self.prefix = prefix
        self._entries: dict[str, OutboxEntry] = {}

    def save(self, entry: OutboxEntry, model: Path | None = None) -> None:
        if model is not None:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            try:  # the task's file is not changed after this, only removed with its task dir
                os.link(model, self.model_file(entry.key))
            except OSError:  # another file system
                shutil.copyfile(model, self.model_file(entry.key))
        self._entries[entry.key] = entry

    def load(self) -> list[OutboxEntry]:
        return list(self._entries.values())

    def model_file(self, key: str) -> Path:
        return self.model_dir / f"{self.prefix}{key}.model"

    def remove(self, key: str) -> None:
        self._entries.pop(key, None)
        self.model_file(key).unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory; the renames are still atomic
        pass
    finally:
        os.close(fd)
