"""The client's private work dir: one client at a time (a lock), and a stable identity kept in it.

The package extract dir (FEDN_PACKAGE_EXTRACT_DIR) is locked the same way: one client
unpacks and runs its package there at a time.

FEDn's client makes a new random id (and name) at every start unless one is given,
so each restart looks like a new client to the server. Here an id made once is kept
in ``<work dir>/identity.json`` and reused, so a restarted client is the same client.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..adapters.atomic_file import replace_text
from ..domain.errors import ConfigError
from ..domain.model import Identity

log = logging.getLogger("fedclient.workdir")

IDENTITY_FILE = "identity.json"
LOCK_FILE = "fedclient.lock"


def resolve_identity(work_dir: Path, name: str | None, client_id: str | None) -> Identity:
    """The identity to join as (``decide_identity``), kept in the work dir (``keep_identity``).

    Both given: nothing is read or written.
    """
    identity = decide_identity(work_dir, name, client_id)
    if not (name and client_id):
        keep_identity(work_dir, identity)
    return identity


def decide_identity(work_dir: Path, name: str | None, client_id: str | None) -> Identity:
    """The identity to join as: given values win; missing ones come from the work dir, or are new.

    Nothing is written (``keep_identity`` does that).
    """
    if name and client_id:
        return Identity(name, client_id)
    path = work_dir / IDENTITY_FILE
    kept = _read_identity(path)
    if kept is not None and not client_id:
        log.info("using the client id %s kept in %s", kept.client_id, path)
    return Identity(
        name or (kept.name if kept else f"client{uuid.uuid4().hex[:8]}"),
        client_id or (kept.client_id if kept else str(uuid.uuid4())),
    )


def keep_identity(work_dir: Path, identity: Identity) -> Identity:
    """Write ``identity`` into the work dir unless it is what is kept there already; return it."""
    path = work_dir / IDENTITY_FILE
    kept = _read_identity(path)
    if identity != kept:
        _write_identity(path, identity)
    return identity


def kept_identity(work_dir: Path) -> Identity | None:
    """The identity kept in ``work_dir`` by an earlier start, if any; nothing is written."""
    return _read_identity(work_dir / IDENTITY_FILE)


def _read_identity(path: Path) -> Identity | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{path} cannot be read ({exc}); fix or delete it, or give --client-id and --name"
        ) from None
    name, client_id = (data.get(k) if isinstance(data, dict) else None for k in ("name", "client_id"))
    if not (isinstance(name, str) and name and isinstance(client_id, str) and client_id):
        raise ConfigError(f"{path} must hold a 'name' and a 'client_id'; fix or delete it")
    return Identity(name, client_id)


def _write_identity(path: Path, identity: Identity) -> None:
    """Written atomically, so a crash never leaves half a file that would stop the next start."""
    replace_text(path, json.dumps({"name": identity.name, "client_id": identity.client_id}, indent=1) + "\n")


@contextlib.contextmanager
def work_dir_lock(work_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the work dir for as long as the client runs.

    The operating system drops a flock when the process ends, however it ends,
    so a crashed client never leaves a stale lock behind.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock; run one client per work dir by hand
        log.warning("cannot lock the work dir on this platform; run one client per work dir")
        yield
        return
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            raise ConfigError(
                f"another fedclient (pid {holder}) is already using the work dir {work_dir}; "
                "stop it or give this one its own --work-dir"
            ) from None
        except OSError as exc:  # e.g. ENOLCK: an NFS mount without a lock service
            log.warning(
                "cannot lock the work dir %s (%s): a second fedclient using it would not be stopped",
                work_dir,
                exc.strerror or exc,
            )
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


@contextlib.contextmanager
def extract_dir_lock(target: Path | None, origin: str = "--package-extract-dir") -> Iterator[None]:
    """Hold an exclusive lock on the package extract dir for as long as the client runs.

    The lock is a flock on the directory itself (created if missing, as FEDn's client
    does): no lock file the package's code could delete, and the operating system drops
    it when the process ends. ``target`` None: no extract dir, nothing to lock.
    """
    if target is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock
        log.warning("cannot lock the package extract dir on this platform; run one client per extract dir")
        yield
        return
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _flock_holder(fd)
            raise ConfigError(
                f"another fedclient{f' (pid {holder})' if holder else ''} is already unpacking its package "
                f"into {target} ({origin}); stop it or give this one its own extract dir"
            ) from None
        except OSError as exc:  # e.g. EBADF: some NFS mounts do not lock a directory opened read-only
            log.warning(
                "cannot lock the package extract dir %s (%s): "
                "a second fedclient using it would not be stopped",
                target,
                exc.strerror or exc,
            )
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _flock_holder(fd: int) -> str | None:
    """The pid holding a flock on ``fd``'s inode, from /proc/locks (Linux), for the error message."""
    st = os.fstat(fd)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode and fields[4].isdigit():
                    return fields[4]
    except OSError:
        return None
    return None
