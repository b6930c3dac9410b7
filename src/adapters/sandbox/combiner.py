"""A FEDn-0.33-compatible combiner on grpc.aio, for contract tests and the local sandbox.

It speaks the server side of docs/PROTOCOL.md §3 - the same method paths,
messages, status sequences and quirks a client meets at a real combiner (tasks
queued per client_id and kept across reconnects, UNKNOWN then FAILED for a
missing model, the empty OK upload terminator, "Token is missing"/"Invalid
token" refusals) - and records what clients send as plain dataclasses, so the
round orchestrator and tests never touch protobuf. It is written from the wire
facts, not from FEDn's code, and keeps models on disk, never in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import shutil
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio

from ...domain.model import TaskKind
from ..combiner_grpc.chunked_io import ChunkFileWriter, read_chunks
from ..combiner_grpc.conversions import task_type
from ..combiner_grpc.generated import fedn_pb2 as pb
from ..combiner_grpc.generated import fedn_pb2_grpc as rpc
from .combiner_records import (
    AttributeRecord,
    BackwardRecord,
    HeartbeatRecord,
    MetricRecord,
    PredictionRecord,
    StatusRecord,
    TelemetryRecord,
    UpdateRecord,
    UploadRecord,
    ValidationRecord,
    attribute_record,
    backward_record,
    heartbeat_record,
    metric_record,
    prediction_record,
    status_record,
    telemetry_record,
    update_record,
    validation_record,
)
from .grpc_quiet import quiet_cancelled_handlers
from .tokens import SandboxTokens

ONLINE_WINDOW = 10.0  # FEDn: active = subscribed and last heartbeat < 10 s old
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$")  # ids become file names
# FEDn's combiner server options (docs/PROTOCOL.md §3.3), so client keepalive policy is tested against them.
SERVER_OPTIONS = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 30_000),
    ("grpc.max_connection_idle_ms", 300_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.max_ping_strikes", 2),
    # Calls gRPC holds for the asyncio server until its event loop asks for them: past the
    # defaults (1,000, hard 3,000) gRPC CANCELs new calls. With thousands of clients in this
    # process (simulate), the loop is busy and heartbeats and task streams were cancelled by
    # the thousand (measured: 5,000 clients, ~2,800 streams got through). FEDn's threaded
    # server has the same limits, but a thread pool that never lags that far behind.
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
)


__all__ = [
    "AttributeRecord",
    "BackwardRecord",
    "HeartbeatRecord",
    "MetricRecord",
    "PredictionRecord",
    "SandboxCombiner",
    "StatusRecord",
    "TelemetryRecord",
    "UpdateRecord",
    "UploadRecord",
    "ValidationRecord",
]
# Fault-injection points ("download", "upload", "uploaded", "update"): a hook in ``hooks`` under
# that name is awaited there, with the model or update id.
Hook = Callable[[str], Awaitable[None]]

R = TypeVar("R", UpdateRecord, ValidationRecord, PredictionRecord, BackwardRecord)


class SandboxCombiner:
    """One combiner. ``start()`` it inside the event loop that will use it."""

    def __init__(
        self,
        model_dir: Path,
        name: str = "combiner",
        require_token: str | None = None,
        tls: tuple[bytes, bytes] | None = None,
        client_ca: bytes | None = None,
        tokens: SandboxTokens | None = None,
        history: int | None = None,
        online_window: float = ONLINE_WINDOW,
    ) -> None:
        """``tls`` = (private key PEM, certificate chain PEM) serves TLS instead of plaintext;
        ``client_ca`` (PEM) then also requires clients to present a certificate it signed (mTLS).
        ``history``: keep only the last that many heartbeats and calls (``heartbeat_log``,
        ``heartbeat_records``, ``calls``), not all (thousands of simulated clients beat
        hundreds of times a second); None keeps every one, as tests read them.
        ``online_window``: a client is online while its last heartbeat is younger (FEDn: 10 s;
        simulate paces thousands of clients' heartbeats slower and widens it to match)."""
        self.online_window = online_window
        self.model_dir = Path(model_dir)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.require_token = require_token
        self.tokens = tokens  # expiring tokens (checked on every call, as FEDn's interceptor does)
        # every RPC as it arrived, refused or not
        self.calls: list[str] | deque[str] = [] if history is None else deque(maxlen=history)
        self._tls = tls
        self._client_ca = client_ca
        self.statuses: list[StatusRecord] = []
        self.updates: list[UpdateRecord] = []
        self.validations: list[ValidationRecord] = []
        self.predictions: list[PredictionRecord] = []
        self.heartbeats: dict[str, float] = {}  # client_id -> when its last heartbeat came
        # Clients declared gone for good (``lose_clients``): never online, their tasks count as answered.
        self.lost: set[str] = set()
        # every heartbeat, with its usage fields
        self.heartbeat_records: list[HeartbeatRecord] | deque[HeartbeatRecord] = (
            [] if history is None else deque(maxlen=history)
        )
        self.telemetry: list[TelemetryRecord] = []
        self.backward_completions: list[BackwardRecord] = []
        # Every call a client made, in order, whatever came of it: (method, model/update id or "").
        self.attempts: list[tuple[str, str]] = []
        self.uploads: list[UploadRecord] = []
        self.hooks: dict[str, Hook] = {}
        # Misbehaviour for tests, per model id: "wrong-id" (chunks name another model),
        # "oversized-chunk" (one 5 MiB chunk), "no-ok" (the stream ends without OK),
        # "endless" (chunks until the client gives up).
        self.misbehave: dict[str, str] = {}
        self.downloads: list[str] = []  # every Download request, in order
        # Every heartbeat as (client_id, monotonic time of arrival): the jitter benchmark reads it.
        self.heartbeat_log: list[tuple[str, float]] | deque[tuple[str, float]] = (
            [] if history is None else deque(maxlen=history)
        )
        self.metrics: list[MetricRecord] = []
        self.attributes: list[AttributeRecord] = []
        self.metadata_seen: deque[tuple[str, dict[str, Any]]] = deque(maxlen=10_000)
        # What the transport said about each call's client: (method, security type, the subject
        # alternative names of its certificate); "ssl" over TLS, with names only under mTLS.
        self.peers_seen: deque[tuple[str, str, tuple[str, ...]]] = deque(maxlen=10_000)
        self._queues: dict[str, asyncio.Queue[pb.TaskRequest]] = {}
        self._sent: dict[str, tuple[str, pb.TaskRequest]] = {}
        self._subscribed: dict[str, int] = {}
        self._stops: set[asyncio.Event] = set()
        self._changed = asyncio.Condition()
        self._server: grpc.aio.Server | None = None
        self._address: tuple[str, int] | None = None

    # ----------------------------------------------------------- lifecycle --

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        quiet_cancelled_handlers()
        server = grpc.aio.server(options=SERVER_OPTIONS)
        servicer = _Servicer(self)  # type: ignore[abstract]  # unused FEDn methods stay UNIMPLEMENTED
        rpc.add_ModelServiceServicer_to_server(servicer, server)
        rpc.add_ConnectorServicer_to_server(servicer, server)
        rpc.add_CombinerServicer_to_server(servicer, server)
        if self._tls is None:
            bound = server.add_insecure_port(f"{host}:{port}")
        else:
            credentials = grpc.ssl_server_credentials(
                [self._tls],
                root_certificates=self._client_ca,
                require_client_auth=self._client_ca is not None,
            )
            bound = server.add_secure_port(f"{host}:{port}", credentials)
        if not bound:
            raise RuntimeError(f"sandbox combiner could not bind {host}:{port}")
        await server.start()
        self._server, self._address = server, (host, int(bound))
        return int(bound)

    async def stop(self) -> None:
        for stop in list(self._stops):
            stop.set()
        if self._server is not None:
            await self._server.stop(grace=1.0)
            self._server = None

    async def crash(self) -> None:
        """Stop at once, as a killed process: open calls are aborted, nothing is flushed.

        Records, queued tasks and stored models are kept, so ``start()`` on the same
        port brings back the same combiner (as a restarted one with its model store).
        """
        for stop in list(self._stops):
            stop.set()
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace=None)

    async def hook(self, point: str, subject: str) -> None:
        hook = self.hooks.get(point)
        if hook is not None:
            await hook(subject)

    def updates_for(self, correlation_id: str) -> list[UpdateRecord]:
        return [u for u in self.updates if u.correlation_id == correlation_id]

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the sandbox combiner is not started")
        return self._address

    # --------------------------------------------------------------- models --

    def model_path(self, model_id: str) -> Path:
        if not _SAFE_ID.match(model_id):
            raise ValueError(f"unsafe model id {model_id!r}")
        return self.model_dir / model_id

    def put_model(self, model_id: str, src: Path) -> None:
        """Copy ``src`` into the store; it becomes visible to downloads only once complete."""
        with ChunkFileWriter(self.model_path(model_id)) as writer, src.open("rb") as source:
            shutil.copyfileobj(source, writer)
            writer.commit()

    def _stored(self, model_id: str) -> Path | None:
        try:
            path = self.model_path(model_id)
        except ValueError:
            return None
        return path if path.is_file() else None

    # ---------------------------------------------------------------- tasks --

    def _queue(self, client_id: str) -> asyncio.Queue[pb.TaskRequest]:
        return self._queues.setdefault(client_id, asyncio.Queue())

    def submit_task(
        self,
        client_id: str,
        kind: TaskKind,
        model_id: str,
        session_id: str = "",
        data: str = "",
        wire_type: int | None = None,
    ) -> str:
        """Queue a task for ``client_id`` (now or at its next subscription); return the correlation id.

        ``wire_type`` sends that StatusType number instead of ``kind``'s (a type no client serves).
        """
        correlation_id = str(uuid.uuid4())
        request = pb.TaskRequest(
            sender=pb.Client(name=self.name, role=pb.COMBINER),
            receiver=pb.Client(client_id=client_id, role=pb.CLIENT),
            model_id=model_id,
            data=data,
            correlation_id=correlation_id,
            timestamp=str(datetime.now()),  # naive local time, as FEDn sends it
            session_id=session_id,
            type=task_type(kind) if wire_type is None else wire_type,  # type: ignore[arg-type]
        )
        self._sent[correlation_id] = (client_id, request)
        self._queue(client_id).put_nowait(request)
        return correlation_id

    def resubmit(self, correlation_id: str) -> str:
        """Queue an already sent request again, same correlation id (a redelivery)."""
        client_id, request = self._sent[correlation_id]
        self._queue(client_id).put_nowait(request)
        return correlation_id

    async def kick_clients(self, timeout: float = 5.0) -> None:
        """End every open TaskStream normally (status OK), as a combiner shutting down would."""
        for stop in list(self._stops):
            stop.set()
        await self._wait(lambda: not self._stops, timeout)

    # ------------------------------------------------------------- waiting --

    def online_clients(self) -> set[str]:
        now = time.monotonic()
        return {
            client_id
            for client_id, streams in self._subscribed.items()
            if streams > 0
            and now - self.heartbeats.get(client_id, float("-inf")) < self.online_window
            and client_id not in self.lost
        }

    async def lose_clients(self, client_ids: Iterable[str]) -> None:
        """These clients are gone for good (their process died): waits for their tasks end now.

        Without this a round waits for a dead client until its timeout, as FEDn's does; the
        one who knows a client died (``simulate --ray`` when a node is lost) says so here.
        """
        self.lost.update(client_ids)
        await self._notify()

    async def wait_for_clients(self, n: int, timeout: float) -> set[str]:
        """Wait until ``n`` clients are online; return those online at the end (maybe fewer)."""
        await self._wait(lambda: len(self.online_clients()) >= n, timeout)
        return self.online_clients()

    async def wait_for_updates(self, correlation_ids: Iterable[str], timeout: float) -> list[UpdateRecord]:
        return await self._wait_records(self.updates, correlation_ids, timeout)

    async def wait_for_validations(
        self, correlation_ids: Iterable[str], timeout: float
    ) -> list[ValidationRecord]:
        return await self._wait_records(self.validations, correlation_ids, timeout)

    async def wait_for_predictions(
        self, correlation_ids: Iterable[str], timeout: float
    ) -> list[PredictionRecord]:
        return await self._wait_records(self.predictions, correlation_ids, timeout)

    async def wait_for_backward_completions(
        self, correlation_ids: Iterable[str], timeout: float
    ) -> list[BackwardRecord]:
        return await self._wait_records(self.backward_completions, correlation_ids, timeout)

    async def wait_for_answers(
        self, records: Sequence[R], correlation_ids: Iterable[str], timeout: float
    ) -> tuple[list[R], list[StatusRecord]]:
        """Wait until each task has its record in ``records`` or an ERROR status (a failed task).

        Returns the records and the ERROR statuses (first per task, in arrival order): a
        round whose every client has failed ends then, not at its timeout.
        """
        wanted = set(correlation_ids)
        missing = set(wanted)
        seen = {"records": 0, "statuses": 0}  # records and statuses only grow: look at the new ones

        def answered() -> bool:
            # Called at every notification: with thousands of clients, rescanning everything
            # each time costs more than the round itself.
            for record in records[seen["records"] :]:
                missing.discard(record.correlation_id)
            for status in self.statuses[seen["statuses"] :]:
                if status.level == "ERROR":
                    missing.discard(status.correlation_id)
            seen["records"], seen["statuses"] = len(records), len(self.statuses)
            if self.lost and missing:  # tasks of clients declared lost will never be answered
                missing.difference_update({cid for cid in missing if self._sent[cid][0] in self.lost})
            return not missing

        await self._wait(answered, timeout)
        return [r for r in records if r.correlation_id in wanted], self.failures(wanted)

    def failures(self, correlation_ids: set[str]) -> list[StatusRecord]:
        """The first ERROR status of each of these tasks, in arrival order."""
        seen: set[str] = set()
        first = []
        for status in self.statuses:
            cid = status.correlation_id
            if status.level == "ERROR" and cid in correlation_ids and cid not in seen:
                seen.add(cid)
                first.append(status)
        return first

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds over the records (checked whenever one arrives)."""
        return await self._wait(predicate, timeout)

    async def _wait_records(
        self, records: Sequence[R], correlation_ids: Iterable[str], timeout: float
    ) -> list[R]:
        """The records answering these tasks, in arrival order; on timeout, whatever has arrived."""
        wanted = set(correlation_ids)
        await self._wait(lambda: wanted <= {r.correlation_id for r in records}, timeout)
        return [r for r in records if r.correlation_id in wanted]

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                return False
            return True

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


class _Servicer(rpc.ModelServiceServicer, rpc.ConnectorServicer, rpc.CombinerServicer):
    """The three FEDn services a client calls, backed by one SandboxCombiner."""

    def __init__(self, combiner: SandboxCombiner) -> None:
        self._c = combiner

    def _reply(self, text: str) -> pb.Response:
        return pb.Response(sender=pb.Client(name=self._c.name, role=pb.COMBINER), response=text)

    async def _admit(self, context: grpc.aio.ServicerContext, method: str) -> dict[str, Any]:
        """Record the call's metadata and enforce the token the way FEDn's JWT interceptor words it."""
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        self._c.metadata_seen.append((method, metadata))
        auth = context.auth_context()
        security = b"".join(auth.get("transport_security_type", ())).decode()
        names = tuple(name.decode() for name in auth.get("x509_subject_alternative_name", ()))
        self._c.peers_seen.append((method, security, names))
        self._c.calls.append(method)
        expected = self._c.require_token
        if self._c.tokens is not None:
            scheme, _, token = str(metadata.get("authorization") or "").partition(" ")
            if not token:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Token is missing")
            if self._c.tokens.check(token, f"combiner {method}") is not None:
                # FEDn 0.33's interceptor says "Invalid token" for an expired one too.
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid token")
        elif expected is not None:
            auth = str(metadata.get("authorization") or "")
            if not auth:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Token is missing")
            scheme, _, token = auth.partition(" ")
            if scheme != "Bearer":
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid token scheme, expected Bearer")
            if not hmac.compare_digest(token.encode(), expected.encode()):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid token")
        return metadata

    async def TaskStream(
        self, request: pb.ClientAvailableMessage, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TaskRequest]:
        metadata = await self._admit(context, "TaskStream")
        if "client" not in metadata:  # FEDn indexes metadata["client"] and fails without it
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "metadata 'client' is missing")
        client_id = request.sender.client_id
        queue, stop = self._c._queue(client_id), asyncio.Event()
        self._c._stops.add(stop)
        self._c._subscribed[client_id] = self._c._subscribed.get(client_id, 0) + 1
        await self._c._notify()
        stopper = asyncio.ensure_future(stop.wait())
        getter: asyncio.Future[pb.TaskRequest] | None = None
        try:
            while not stopper.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    break  # kicked; cancelling the pending get leaves queued tasks for the next stream
                request_out, getter = getter.result(), None
                yield request_out
        finally:
            for waiter in (getter, stopper):
                if waiter is not None:
                    waiter.cancel()
            self._c._stops.discard(stop)
            self._c._subscribed[client_id] -= 1
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._c._notify()

    async def SendHeartbeat(self, request: pb.Heartbeat, context: grpc.aio.ServicerContext) -> pb.Response:
        await self._admit(context, "SendHeartbeat")
        now = time.monotonic()
        client_id = request.sender.client_id
        last = self._c.heartbeats.get(client_id)
        self._c.heartbeats[client_id] = now
        self._c.heartbeat_log.append((client_id, now))
        self._c.heartbeat_records.append(heartbeat_record(request))
        if last is None or now - last >= self._c.online_window:  # it may have come online: wake the waiters
            await self._c._notify()
        return self._reply("Heartbeat received")

    async def SendStatus(self, request: pb.Status, context: grpc.aio.ServicerContext) -> pb.Response:
        await self._admit(context, "SendStatus")
        self._c.statuses.append(status_record(request))
        await self._c._notify()
        return self._reply("Status received.")

    async def SendModelUpdate(
        self, request: pb.ModelUpdate, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        self._c.attempts.append(("SendModelUpdate", request.model_update_id))
        await self._admit(context, "SendModelUpdate")
        self._c.updates.append(update_record(request))
        await self._c._notify()
        await self._c.hook("update", request.model_update_id)
        return self._reply(
            f"RECEIVED ModelUpdate {request.model_update_id} from client {request.sender.name}"
        )

    async def SendModelValidation(
        self, request: pb.ModelValidation, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        self._c.attempts.append(("SendModelValidation", request.model_id))
        await self._admit(context, "SendModelValidation")
        self._c.validations.append(validation_record(request))
        await self._c._notify()
        return self._reply(f"RECEIVED ModelValidation {request.model_id} from client {request.sender.name}")

    async def SendModelPrediction(
        self, request: pb.ModelPrediction, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        await self._admit(context, "SendModelPrediction")
        self._c.predictions.append(prediction_record(request))
        await self._c._notify()
        return self._reply(f"RECEIVED ModelPrediction {request.model_id} from client {request.sender.name}")

    async def SendModelMetric(
        self, request: pb.ModelMetric, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        await self._admit(context, "SendModelMetric")
        if not request.metrics:  # FEDn's combiner fails on a message without values (gRPC UNKNOWN)
            await context.abort(grpc.StatusCode.UNKNOWN, "Exception calling application: 'metrics'")
        self._c.metrics.append(metric_record(request))
        await self._c._notify()
        return self._reply("Metrics received")

    async def SendAttributeMessage(
        self, request: pb.AttributeMessage, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        await self._admit(context, "SendAttributeMessage")
        if not request.attributes:
            await context.abort(grpc.StatusCode.UNKNOWN, "Exception calling application: 'attributes'")
        self._c.attributes.append(attribute_record(request))
        await self._c._notify()
        return self._reply("Attributes received")

    async def SendBackwardCompletion(
        self, request: pb.BackwardCompletion, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        await self._admit(context, "SendBackwardCompletion")
        self._c.backward_completions.append(backward_record(request))
        await self._c._notify()
        return self._reply(f"RECEIVED BackwardCompletion {request.gradient_id} from {request.sender.name}")

    async def SendTelemetryMessage(
        self, request: pb.TelemetryMessage, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        await self._admit(context, "SendTelemetryMessage")
        self._c.telemetry.append(telemetry_record(request))
        await self._c._notify()
        return self._reply("Telemetry received")

    async def Download(
        self, request: pb.ModelRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelResponse]:
        self._c.attempts.append(("Download", request.id))
        await self._admit(context, "Download")
        self._c.downloads.append(request.id)
        mode = self._c.misbehave.get(request.id)
        if mode is not None:
            async for response in _misbehave(mode, request.id):
                yield response
            return
        path = self._c._stored(request.id)
        if path is None:  # FEDn: the id's status first (UNKNOWN), then FAILED when there is no file
            yield pb.ModelResponse(id=request.id, status=pb.UNKNOWN)
            yield pb.ModelResponse(id=request.id, status=pb.FAILED)
            return
        with contextlib.closing(read_chunks(path)) as chunks:
            for number, chunk in enumerate(chunks):
                yield pb.ModelResponse(id=request.id, data=chunk, status=pb.IN_PROGRESS)
                if number == 0:
                    await self._c.hook("download", request.id)
        yield pb.ModelResponse(id=request.id, status=pb.OK)

    async def Upload(
        self, request_iterator: AsyncIterator[pb.ModelRequest], context: grpc.aio.ServicerContext
    ) -> pb.ModelResponse:
        await self._admit(context, "Upload")
        state: list[Any] = ["", 0, False]  # model id, bytes received, completed
        try:
            return await self._receive(request_iterator, context, state)
        finally:
            self._c.attempts.append(("Upload", state[0]))
            self._c.uploads.append(UploadRecord(state[0], state[1], state[2]))

    async def _receive(
        self,
        request_iterator: AsyncIterator[pb.ModelRequest],
        context: grpc.aio.ServicerContext,
        state: list[Any],
    ) -> pb.ModelResponse:
        model_id, received = "", 0
        with contextlib.ExitStack() as stack:
            writer: ChunkFileWriter | None = None
            async for request in request_iterator:
                if writer is None:
                    model_id = request.id
                    if not _SAFE_ID.match(model_id):
                        await context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT, f"unusable model id {model_id!r}"
                        )
                    writer = stack.enter_context(ChunkFileWriter(self._c.model_path(model_id)))
                elif request.id != model_id:
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, "model id changed during the upload"
                    )
                if request.status == pb.OK:
                    writer.commit()
                    state[:] = [model_id, received, True]
                    await self._c._notify()
                    await self._c.hook("uploaded", model_id)
                    return pb.ModelResponse(id=model_id, status=pb.OK, message="Got model successfully.")
                if request.status == pb.IN_PROGRESS:
                    writer.write(request.data)
                    first = received == 0
                    received += len(request.data)
                    state[:] = [model_id, received, False]
                    if first:
                        await self._c.hook("upload", model_id)
        return pb.ModelResponse(
            id=model_id, status=pb.FAILED, message="upload ended without the OK terminator; nothing stored"
        )


async def _misbehave(mode: str, model_id: str) -> AsyncIterator[pb.ModelResponse]:
    """What a broken or hostile combiner might stream for a Download."""
    if mode == "wrong-id":
        yield pb.ModelResponse(id="some-other-model", data=b"x" * 1024, status=pb.IN_PROGRESS)
        yield pb.ModelResponse(id="some-other-model", status=pb.OK)
    elif mode == "oversized-chunk":
        yield pb.ModelResponse(id=model_id, data=b"x" * (5 * 1024 * 1024), status=pb.IN_PROGRESS)
        yield pb.ModelResponse(id=model_id, status=pb.OK)
    elif mode == "no-ok":
        yield pb.ModelResponse(id=model_id, data=b"x" * 1024, status=pb.IN_PROGRESS)
    elif mode == "endless":
        chunk = b"x" * (1024 * 1024)
        for _ in range(1 << 20):
            yield pb.ModelResponse(id=model_id, data=chunk, status=pb.IN_PROGRESS)
    else:
        raise ValueError(f"unknown misbehaviour {mode!r}")
