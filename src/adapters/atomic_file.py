"""Replacing a small file atomically: a crash leaves the old content or the new, never half.

The text goes to a temporary file beside the target, is fsynced, and is renamed over
it. Used for the records the client reads at its next start (identity, kept package,
extract-dir record), where half a file would stop that start.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_text(path: Path, text: str, sync_dir: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (the directory is created if missing).

    ``sync_dir``: also fsync the directory, so the rename itself survives a power cut
    (for a record that must never go back to an older content, such as the privacy budget).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        if sync_dir:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
