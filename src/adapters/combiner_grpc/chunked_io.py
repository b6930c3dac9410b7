"""Model files in and out of gRPC streams one chunk at a time.

FEDn buffers whole models in memory (PROTOCOL.md 7.1); we never do. A download
writes into a temporary file next to its destination and renames it into place
only once the combiner said OK, so a half-received model is never mistaken for
a whole one and a failed transfer leaves nothing behind.

Reads and writes are plain blocking calls: a 1 MiB read or write hits the page
cache and takes far less time than moving the same chunk through gRPC, so a
thread hop per chunk would cost more than it saves.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

# FEDn's CHUNK_SIZE; GRPC-CEILING.md: throughput levels off at 1 MiB.
CHUNK_SIZE = 1 << 20


def read_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> Generator[bytes, None, None]:
    """Yield the file's bytes in pieces of ``chunk_size`` (the last may be shorter; none for 0 bytes)."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    with path.open("rb") as src:
        while chunk := src.read(chunk_size):
            yield chunk


class ChunkFileWriter:
    """Collects chunks into ``dest`` atomically.

    Use as a context manager: ``write()`` each chunk, then ``commit()``. Leaving
    the block without a commit (an error, a cancelled task) deletes the
    temporary file and leaves any existing ``dest`` untouched. No fsync: a
    model that did not survive a power cut is simply downloaded again.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.bytes_written = 0
        self._tmp: Path | None = None
        self._file: BinaryIO | None = None
        self._committed = False

    def __enter__(self) -> ChunkFileWriter:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=".part", dir=self.dest.parent)
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        return self

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise RuntimeError("ChunkFileWriter used outside its with-block or after commit")
        self._file.write(chunk)
        self.bytes_written += len(chunk)

    def commit(self) -> Path:
        """Close the temporary file and rename it onto ``dest``."""
        if self._file is None or self._tmp is None:
            raise RuntimeError("ChunkFileWriter used outside its with-block or after commit")
        self._file.close()
        self._file = None
        os.replace(self._tmp, self.dest)
        self._committed = True
        return self.dest

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None and not self._committed:
            self._tmp.unlink(missing_ok=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            self.abort()
