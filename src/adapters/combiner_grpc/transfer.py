"""Model download and upload over FEDn's ModelService (docs/PROTOCOL.md §3.7, §3.8).

Kept apart from the rest of the link because it is the one hot path. The
chunks do not go through generated protobuf objects: ``chunk_wire`` encodes
upload chunks and decodes download chunks by hand (byte-identical wire), the
gRPC calls pass bytes straight through, uploads ``readinto`` one reused buffer
and downloads write a view of each received message to disk. Figures and the
profile behind these choices: docs/PERFORMANCE.md.

Waits are progress timeouts (no chunk for N seconds), never a total deadline:
a 5 GiB model on a slow link is fine as long as bytes keep moving.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import grpc.aio

from ...domain.errors import FedClientError, ModelNotFound, TaskFailed, TransientError
from ...domain.model import Identity
from ...domain.observe import NULL_OBSERVER, Observer, TransferKind
from . import chunk_wire as wire
from .channel import Metadata
from .chunked_io import CHUNK_SIZE, BackgroundFileWriter, ReadAhead
from .conversions import download_request_pb
from .generated import fedn_pb2 as pb

_UPLOAD = "/fedn.ModelService/Upload"
_DOWNLOAD = "/fedn.ModelService/Download"

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
        # Raw-bytes multicallables: the request chunks arrive already encoded (identity
        # serializer), download chunks are decoded by chunk_wire, not by protobuf.
        self._upload = channel.stream_unary(_UPLOAD, response_deserializer=pb.ModelResponse.FromString)
        self._download = channel.unary_stream(
            _DOWNLOAD,
            request_serializer=pb.ModelRequest.SerializeToString,
            response_deserializer=wire.decode_response,
        )
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
        call = self._download(download_request_pb(model_id, self._identity), metadata=self._metadata())
        loop = asyncio.get_running_loop()
        unknown_since: float | None = None
        progress = self._observer.transfer(TransferKind.MODEL_DOWNLOAD, model_id, None)
        ok = False
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            room = shutil.disk_usage(dest.parent).free - DISK_RESERVE_BYTES
            async with BackgroundFileWriter(dest) as writer:
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
                            f"after {writer.bytes_queued} bytes"
                        ) from None
                    if response is grpc.aio.EOF:
                        raise TransientError(
                            f"{what} ended before the combiner said OK ({writer.bytes_queued} bytes received)"
                        )
                    assert isinstance(response, wire.Response)
                    if response.id != model_id:
                        raise TaskFailed(
                            f"{what}: the combiner sent a chunk of model {response.id[:80]!r} instead"
                        )
                    if response.status == wire.IN_PROGRESS:
                        if response.data:
                            self._check_size(what, len(response.data), writer.bytes_queued, room)
                            await writer.write(response.data)
                            progress.advance(len(response.data))
                    elif response.status == wire.OK:
                        await writer.commit()
                        ok = True
                        return writer.bytes_written
                    elif response.status == wire.FAILED:
                        raise ModelNotFound(f"the combiner has no model {model_id} (it answered FAILED)")
                    elif response.status == wire.UNKNOWN:
                        unknown_since = loop.time() if unknown_since is None else unknown_since
                        if loop.time() - unknown_since >= self._unknown_timeout:
                            raise self._unknown(model_id)
                    # IN_PROGRESS_OK carries nothing we need; FEDn ignores it too.
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INTERNAL and "deserializ" in (err.details() or "").lower():
                raise TransientError(f"{what}: the combiner sent a malformed chunk") from None
            raise self._fail(err, what) from None
        except OSError as exc:
            raise TaskFailed(f"cannot write model {model_id} to {dest}: {exc}") from exc
        finally:
            call.cancel()
            progress.finish(ok)

    async def has_model(self, model_id: str) -> bool:
        """Ask for ``model_id`` and read only the first answer: data (or an empty model) means stored."""
        what = f"probe for model {model_id}"
        call = self._download(download_request_pb(model_id, self._identity), metadata=self._metadata())
        try:
            try:
                response = await _bounded(call.read(), self._progress_timeout)
            except _Stalled:
                raise TransientError(f"{what} stalled: no answer for {self._progress_timeout:g} s") from None
            if response is grpc.aio.EOF:
                raise TransientError(f"{what} ended without an answer")
            # A stored model streams IN_PROGRESS chunks with data, or OK at once when it is empty;
            # UNKNOWN, FAILED or a data-less IN_PROGRESS (an upload still being written) mean "not here".
            return response.status == wire.OK or (response.status == wire.IN_PROGRESS and bool(response.data))
        except grpc.aio.AioRpcError as err:
            raise self._fail(err, what) from None
        finally:
            call.cancel()

    async def upload(self, model_id: str, src: Path) -> int:
        """Send ``src`` as ``model_id``: IN_PROGRESS chunks, then one empty OK terminator.

        A client stream cannot be replayed, so a failed upload is reported and
        the caller starts over from the file (it still has it).
        """
        what = f"upload of model {model_id}"
        call = self._upload(metadata=self._metadata())
        framing = wire.RequestFraming.for_model(model_id)
        sent = 0
        try:
            total: int | None = src.stat().st_size
        except OSError:
            total = None
        progress = self._observer.transfer(TransferKind.MODEL_UPLOAD, model_id, total)
        ok = False
        try:
            async with ReadAhead(src, framing.chunk, self._chunk_size) as chunks:
                async for length, message in chunks:
                    await self._progress(call.write(message), what, sent)
                    sent += length
                    progress.advance(length)
            await self._progress(call.write(framing.terminator), what, sent)
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
    except TimeoutError:
        raise _Stalled from None
