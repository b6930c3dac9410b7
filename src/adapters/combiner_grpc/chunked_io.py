"""Model files in and out of gRPC streams one chunk at a time.

FEDn buffers whole models in memory (PROTOCOL.md 7.1); we never do. A download
writes into a temporary file next to its destination and renames it into place
only once the combiner said OK, so a half-received model is never mistaken for
a whole one and a failed transfer leaves nothing behind.

Reads are plain blocking calls into one reused buffer (a page-cache read of
1 MiB is short next to sending it). Download writes go through
``BackgroundFileWriter``: a write can take as long as receiving the chunk did
(measured in docs/PERFORMANCE.md), so it runs on a worker thread while the
event loop keeps reading from gRPC.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
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

    def write(self, chunk: bytes | memoryview) -> None:
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


class BackgroundFileWriter:
    """A ``ChunkFileWriter`` whose writes run on one worker thread, a few chunks behind the network.

    Profiling a download showed a third of the event loop's time inside
    ``write()``: while the loop blocks on the disk, gRPC's messages wait. Here the
    loop hands each chunk (a view into the received message, no copy) to the
    worker and goes back to reading; it only waits when ``depth`` chunks are
    still being written, which bounds memory to ``depth`` chunks. Same atomic
    rules as ``ChunkFileWriter``: ``dest`` appears only on ``commit()``.
    """

    def __init__(self, dest: Path, depth: int = 4) -> None:
        self._writer = ChunkFileWriter(dest)
        self._depth = depth
        self._pending: deque[asyncio.Future[None]] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self.bytes_queued = 0

    @property
    def dest(self) -> Path:
        return self._writer.dest

    @property
    def bytes_written(self) -> int:
        return self._writer.bytes_written

    async def __aenter__(self) -> BackgroundFileWriter:
        self._writer.__enter__()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="fedclient-model-write")
        return self

    async def write(self, chunk: bytes | memoryview) -> None:
        if self._executor is None:
            raise RuntimeError("BackgroundFileWriter used outside its async with-block")
        loop = asyncio.get_running_loop()
        self._pending.append(loop.run_in_executor(self._executor, self._writer.write, chunk))
        self.bytes_queued += len(chunk)
        while len(self._pending) >= self._depth:
            await self._pending.popleft()  # a failed write raises here (OSError)

    async def commit(self) -> Path:
        while self._pending:
            await self._pending.popleft()
        return self._writer.commit()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            # Let queued writes finish (at most ``depth`` chunks) before the file is closed or removed.
            self._executor.shutdown(wait=True)
            self._executor = None
        for future in self._pending:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved, so asyncio does not warn about it
        self._pending.clear()
        self._writer.__exit__(exc_type, exc, tb)


class ReadAhead:
    """The file's chunks, read and encoded on one worker thread, up to ``depth`` ahead of the sender.

    ``encode`` turns a view of one chunk (valid only during the call) into the
    bytes to send; iterating yields ``(chunk_length, encoded)``. The worker reads
    into one reused buffer, so memory stays at ``depth`` encoded chunks.
    """

    def __init__(
        self, path: Path, encode: Callable[[memoryview], bytes], chunk_size: int = CHUNK_SIZE, depth: int = 2
    ) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self._path = path
        self._encode = encode
        self._chunk_size = chunk_size
        self._depth = depth
        self._file: BinaryIO | None = None
        self._view = memoryview(bytearray(chunk_size))
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[asyncio.Future[tuple[int, bytes] | None]] = deque()
        self._eof = False

    async def __aenter__(self) -> ReadAhead:
        self._file = self._path.open("rb", buffering=0)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="fedclient-model-read")
        return self

    def __aiter__(self) -> ReadAhead:
        return self

    def _read_one(self) -> tuple[int, bytes] | None:
        assert self._file is not None
        filled = 0
        while filled < self._chunk_size:
            got = self._file.readinto(self._view[filled:])  # type: ignore[attr-defined]
            if not got:
                break
            filled += got
        return (filled, self._encode(self._view[:filled])) if filled else None

    async def __anext__(self) -> tuple[int, bytes]:
        if self._executor is None:
            raise RuntimeError("ReadAhead used outside its async with-block")
        loop = asyncio.get_running_loop()
        while not self._eof and len(self._pending) < self._depth:
            self._pending.append(loop.run_in_executor(self._executor, self._read_one))
        if not self._pending:
            raise StopAsyncIteration
        item = await self._pending.popleft()
        if item is None:
            self._eof = True
            raise StopAsyncIteration
        if item[0] < self._chunk_size:
            self._eof = True  # a short read is the end: queue nothing more
        return item

    async def __aexit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for future in self._pending:
            if future.done() and not future.cancelled():
                future.exception()
        self._pending.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
