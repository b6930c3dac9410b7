"""Model download and upload over FEDn's ModelService (PROTOCOL.md 3.7, 3.8).

Kept apart from the rest of the link because it is the one hot path: per
GRPC-CEILING.md, grpc.aio with protobuf messages reaches ~60-70 % of the sync
API's bulk throughput, so this class may one day be swapped for a sync stub
run in a thread without touching anything else.

Waits are progress timeouts (no chunk for N seconds), never a total deadline:
a 5 GiB model on a slow link is fine as long as bytes keep moving.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import grpc.aio

from ...domain.errors import FedClientError, ModelNotFound, TaskFailed, TransientError
from ...domain.model import Identity
from ...domain.observe import NULL_OBSERVER, Observer, TransferKind
from .channel import Metadata
from .chunked_io import CHUNK_SIZE, ChunkFileWriter, read_chunks
from .conversions import download_request_pb, upload_chunk_pb, upload_terminator_pb
from .generated import fedn_pb2 as pb
from .generated import fedn_pb2_grpc

T = TypeVar("T")
ErrorTranslator = Callable[[grpc.aio.AioRpcError, str], FedClientError]


# A model bigger than this is refused (settable per client); chunks bigger than this are
# not a FEDn peer's (FEDn sends 1 MiB).
MAX_MODEL_BYTES = 8 * 1024**3
MAX_CHUNK_BYTES = 4 * 1024**2
# Disk space left free while a model is written, so a big model cannot fill the disk.
DISK_RESERVE_BYTES = 64 * 1024**2


class _Stalled(Exception):
    """No progress within the allowed time."""


def _status_name(status: int) -> str:
    try:
        return pb.ModelStatus.Name(status)  # type: ignore[arg-type]
    except ValueError:
        return str(status)


class GrpcModelTransfer:
    """Streams model files between disk and the combiner, O(chunk) memory in both directions."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        identity: Identity,
        metadata: Callable[[], Metadata],
        fail: ErrorTranslator,
        chunk_size: int = CHUNK_SIZE,
        progress_timeout: float = 60.0,
        unknown_timeout: float = 20.0,
        max_model_bytes: int = MAX_MODEL_BYTES,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._observer = observer
        self._stub = fedn_pb2_grpc.ModelServiceStub(channel)
        self._max_model_bytes = max_model_bytes
        self._identity = identity
        self._metadata = metadata
        self._fail = fail
        self._chunk_size = chunk_size
        self._progress_timeout = progress_timeout
        self._unknown_timeout = unknown_timeout

    async def download(self, model_id: str, dest: Path) -> int:
        """Write model ``model_id`` to ``dest``; ``dest`` appears only when the combiner said OK."""
        what = f"download of model {model_id}"
        call = self._stub.Download(download_request_pb(model_id, self._identity), metadata=self._metadata())
        loop = asyncio.get_running_loop()
        unknown_since: float | None = None
        progress = self._observer.transfer(TransferKind.MODEL_DOWNLOAD, model_id, None)
        ok = False
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            room = shutil.disk_usage(dest.parent).free - DISK_RESERVE_BYTES
            with ChunkFileWriter(dest) as writer:
                while True:
                    if unknown_since is None:
                        limit = self._progress_timeout
                    else:
                        limit = max(0.0, unknown_since + self._unknown_timeout - loop.time())
                    try:
                        response = await _bounded(call.read(), limit)
                    except _Stalled:
                        if unknown_since is not None:
                            raise self._unknown(model_id) from None
                        raise TransientError(
                            f"{what} stalled: nothing received for {limit:g} s "
                            f"after {writer.bytes_written} bytes"
                        ) from None
                    if response is grpc.aio.EOF:
                        raise TransientError(
                            f"{what} ended before the combiner said OK "
                            f"({writer.bytes_written} bytes received)"
                        )
                    assert isinstance(response, pb.ModelResponse)
                    if response.id != model_id:
                        raise TaskFailed(
                            f"{what}: the combiner sent a chunk of model {response.id[:80]!r} instead"
                        )
                    if response.status == pb.IN_PROGRESS:
                        if response.data:
                            self._check_size(what, len(response.data), writer.bytes_written, room)
                            writer.write(response.data)
                            progress.advance(len(response.data))
                    elif response.status == pb.OK:
                        writer.commit()
                        ok = True
                        return writer.bytes_written
                    elif response.status == pb.FAILED:
                        raise ModelNotFound(f"the combiner has no model {model_id} (it answered FAILED)")
                    elif response.status == pb.UNKNOWN:
                        unknown_since = loop.time() if unknown_since is None else unknown_since
                        if loop.time() - unknown_since >= self._unknown_timeout:
                            raise self._unknown(model_id)
                    # IN_PROGRESS_OK carries nothing we need; FEDn ignores it too.
        except grpc.aio.AioRpcError as err:
            raise self._fail(err, what) from None
        except OSError as exc:
            raise TaskFailed(f"cannot write model {model_id} to {dest}: {exc}") from exc
        finally:
            call.cancel()
            progress.finish(ok)

    async def upload(self, model_id: str, src: Path) -> int:
        """Send ``src`` as ``model_id``: IN_PROGRESS chunks, then one empty OK terminator.

        A client stream cannot be replayed, so a failed upload is reported and
        the caller starts over from the file (it still has it).
        """
        what = f"upload of model {model_id}"
        call = self._stub.Upload(metadata=self._metadata())
        sent = 0
        try:
            total: int | None = src.stat().st_size
        except OSError:
            total = None
        progress = self._observer.transfer(TransferKind.MODEL_UPLOAD, model_id, total)
        ok = False
        try:
            with contextlib.closing(read_chunks(src, self._chunk_size)) as chunks:
                for chunk in chunks:
                    await self._progress(call.write(upload_chunk_pb(model_id, chunk)), what, sent)
                    sent += len(chunk)
                    progress.advance(len(chunk))
            await self._progress(call.write(upload_terminator_pb(model_id)), what, sent)
            await self._progress(call.done_writing(), what, sent)
            response = await self._progress(_result(call), what, sent)
            ok = response.status == pb.OK
        except grpc.aio.AioRpcError as err:
            raise self._fail(err, what) from None
        except asyncio.InvalidStateError:
            # write() after the call already ended (the combiner aborted it, or close()): report its status.
            if not call.done():
                raise
            code, details = await call.code(), await call.details()
            raise self._fail(grpc.aio.AioRpcError(code, details=details), what) from None
        except OSError as exc:
            raise TaskFailed(f"cannot read model file {src} for upload: {exc}") from exc
        finally:
            call.cancel()
            progress.finish(ok)
        if response.status != pb.OK:
            raise TransientError(
                f"the combiner did not accept model {model_id}: "
                f"{_status_name(response.status)} {response.message}".rstrip()
            )
        return sent

    def _check_size(self, what: str, chunk: int, written: int, room: int) -> None:
        if chunk > MAX_CHUNK_BYTES:
            raise TaskFailed(
                f"{what}: a chunk of {chunk} bytes is larger than the limit of {MAX_CHUNK_BYTES}"
            )
        total = written + chunk
        if total > self._max_model_bytes:
            raise TaskFailed(
                f"{what}: the model is larger than the limit of {self._max_model_bytes} bytes "
                "(--max-model-bytes)"
            )
        if total > room:
            raise TaskFailed(
                f"{what}: not enough free disk space for the model (stopped at {written} bytes, "
                f"keeping {DISK_RESERVE_BYTES} bytes free)"
            )

    async def _progress(self, step: Awaitable[T], what: str, sent: int) -> T:
        try:
            return await _bounded(step, self._progress_timeout)
        except _Stalled:
            raise TransientError(
                f"{what} stalled: no progress for {self._progress_timeout:g} s after {sent} bytes"
            ) from None

    def _unknown(self, model_id: str) -> ModelNotFound:
        return ModelNotFound(
            f"the combiner still did not know model {model_id} after {self._unknown_timeout:g} s (UNKNOWN)"
        )


async def _result(call: grpc.aio.StreamUnaryCall) -> pb.ModelResponse:
    response: pb.ModelResponse = await call
    return response


async def _bounded(step: Awaitable[T], seconds: float) -> T:
    try:
        return await asyncio.wait_for(step, seconds)
    except asyncio.TimeoutError:
        raise _Stalled from None
