"""The client's connection to a FEDn 0.33 combiner over grpc.aio.

``GrpcConnector`` is the domain's ``CombinerConnector``; each ``connect()`` owns
one channel and returns a ``GrpcCombinerLink`` bound to one client identity.
The lifecycle decides when to reconnect - the link never rebuilds its channel
behind the caller's back (FEDn's threads did, cancelling each other's calls,
docs/PROTOCOL.md §3.3). Protobuf types never leave this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from ...domain.credentials import Credentials
from ...domain.errors import (
    ConfigError,
    DeliveryUncertain,
    FedClientError,
    PermanentError,
    StreamEnded,
    TransientError,
)
from ...domain.failures import Failure
from ...domain.model import (
    AttributeReport,
    BackwardCompletion,
    CombinerAddress,
    Identity,
    MetricReport,
    ModelUpdate,
    Prediction,
    ResourceUsage,
    Task,
    TaskStatus,
    Validation,
)
from ...domain.observe import NULL_OBSERVER, Observer
from ...domain.redaction import register_secret
from ..plaintext import warn_plaintext_token
from . import conversions as conv
from .channel import ChannelSettings, Metadata, build_channel, call_metadata, presented_certificate, uses_tls
from .chunked_io import CHUNK_SIZE
from .failure_table import WRONG_COMBINER, grpc_verdict
from .generated import fedn_pb2, fedn_pb2_grpc
from .outcome import never_sent
from .rpc_errors import translate
from .transfer import MAX_MODEL_BYTES, GrpcModelTransfer

log = logging.getLogger("fedclient.grpc")


class GrpcConnector:
    """Opens links to combiners with one set of credentials and timeouts."""

    def __init__(
        self,
        token: str | Credentials | None,
        auth_scheme: str = "Bearer",
        root_cert_path: Path | None = None,
        force_tls: bool | None = None,
        rpc_timeout: float = 30.0,
        chunk_size: int = CHUNK_SIZE,
        connect_timeout: float = 10.0,
        progress_timeout: float = 60.0,
        unknown_timeout: float = 20.0,
        max_model_bytes: int = MAX_MODEL_BYTES,
        client_cert_path: Path | None = None,
        client_key_path: Path | None = None,
        insecure: bool = False,
        share_channels: bool = False,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        """``share_channels``: links to the same combiner share one channel (one HTTP/2 connection).

        For many clients in one process (``fedclient simulate``): every call still carries its
        own client's metadata, so the combiner sees separate clients, at a fraction of the
        memory and file descriptors of one channel each. A link then leaves the channel open
        on ``close()``; the connector closes shared channels in ``aclose()``.
        ``observer``: where the links report model transfers (progress, totals).
        """
        self._observer = observer
        # Shared with the controller's HTTP client: a refreshed token reaches every channel.
        self.credentials = token if isinstance(token, Credentials) else Credentials(token)
        register_secret(self.credentials.token)
        self._max_model_bytes = max_model_bytes
        self._settings = ChannelSettings(
            None, auth_scheme, root_cert_path, force_tls, client_cert_path, client_key_path, insecure
        )
        self._shared: dict[str, grpc.aio.Channel] | None = {} if share_channels else None
        self._rpc_timeout = rpc_timeout
        self._chunk_size = chunk_size
        self._connect_timeout = connect_timeout
        self._progress_timeout = progress_timeout
        self._unknown_timeout = unknown_timeout

    def __repr__(self) -> str:
        return f"GrpcConnector({self._settings!r}, {self.credentials!r}, rpc_timeout={self._rpc_timeout:g})"

    async def connect(self, address: CombinerAddress, identity: Identity) -> GrpcCombinerLink:
        """Dial the combiner and wait until the channel is ready (TCP, and TLS if used).

        Credentials are only checked by the first call, so a wrong token shows
        up as AuthError from ``tasks()`` or ``heartbeat()``, not here.
        """
        tls = uses_tls(address, self._settings)
        shared = self._shared is not None and address.target in self._shared
        if self._shared is not None and shared:
            channel = self._shared[address.target]
        else:
            presented = None
            if tls and self._settings.insecure:  # a blocking handshake: off the event loop
                presented = await asyncio.to_thread(presented_certificate, address, self._connect_timeout)
                log.warning("--insecure: trusting whatever certificate combiner %s presents", address.target)
            elif not tls and self.credentials.token:
                warn_plaintext_token(f"combiner {address.target}", address.host)
            channel = build_channel(address, self._settings, presented)
        mode = "TLS" if tls else "plaintext"
        try:
            problem = await self._wait_ready(channel)
        except BaseException:
            if not shared:
                await channel.close()
            raise
        if problem is not None:
            if not shared:
                await channel.close()
            if problem.startswith(_NOT_GRPC):
                raise PermanentError(
                    f"combiner {address.target} does not speak gRPC ({problem[len(_NOT_GRPC) :]}) — "
                    f"{WRONG_COMBINER}"
                ) from None
            if problem:
                raise ConfigError(
                    f"TLS handshake with combiner {address.target} failed: {problem} — trust the CA that "
                    "signed its certificate with FEDN_GRPC_ROOT_CERT_PATH"
                ) from None
            raise TransientError(
                f"cannot reach combiner {address.target} ({mode}) within {self._connect_timeout:g} s"
            ) from None
        log.info("connected to combiner %s (%s) as %s", address.target, mode, identity.client_id)
        if self._shared is not None:
            self._shared.setdefault(address.target, channel)
        return GrpcCombinerLink(
            channel,
            address,
            identity,
            self._settings,
            credentials=self.credentials,
            rpc_timeout=self._rpc_timeout,
            chunk_size=self._chunk_size,
            progress_timeout=self._progress_timeout,
            unknown_timeout=self._unknown_timeout,
            max_model_bytes=self._max_model_bytes,
            owns_channel=self._shared is None,
            observer=self._observer,
        )

    async def aclose(self) -> None:
        """Close the shared channels (nothing to do without ``share_channels``)."""
        if self._shared:
            channels, self._shared = list(self._shared.values()), {}
            for channel in channels:
                await channel.close()

    async def _wait_ready(self, channel: grpc.aio.Channel) -> str | None:
        """Wait for the channel: None when ready, else why not ("" = no answer in time).

        A certificate problem is looked for after a short first wait, as it never goes away.
        """
        first = min(2.0, self._connect_timeout)
        try:
            await asyncio.wait_for(channel.channel_ready(), first)
            return None
        except TimeoutError:
            problem = await _tls_problem(channel)
            if problem or first >= self._connect_timeout:
                return problem or ""
        try:
            await asyncio.wait_for(channel.channel_ready(), self._connect_timeout - first)
            return None
        except TimeoutError:
            return await _tls_problem(channel) or ""


class GrpcCombinerLink:
    """One open channel to one combiner for one identity (the domain's ``CombinerLink``)."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        address: CombinerAddress,
        identity: Identity,
        settings: ChannelSettings,
        credentials: Credentials | None = None,
        rpc_timeout: float = 30.0,
        chunk_size: int = CHUNK_SIZE,
        progress_timeout: float = 60.0,
        unknown_timeout: float = 20.0,
        max_model_bytes: int = MAX_MODEL_BYTES,
        owns_channel: bool = True,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._channel = channel
        self._owns_channel = owns_channel
        self._target = address.target
        self._identity = identity
        self._address = address
        self._settings = settings
        self._credentials = credentials or Credentials(settings.token)
        self._metadata_cache: tuple[int, Metadata] | None = None
        self._rpc_timeout = rpc_timeout
        self._combiner = fedn_pb2_grpc.CombinerStub(channel)
        self._connector = fedn_pb2_grpc.ConnectorStub(channel)
        self._transfer = GrpcModelTransfer(
            channel,
            identity,
            self._metadata,
            self._fail,
            chunk_size,
            progress_timeout,
            unknown_timeout,
            max_model_bytes,
            observer=observer,
        )
        self._streams: set[grpc.aio.UnaryStreamCall] = set()
        self._closed = False
        self._ready_at_close = True

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def target(self) -> str:
        return self._target

    @property
    def _token(self) -> str | None:
        return self._credentials.token

    def _metadata(self) -> Metadata:
        """Per-call metadata with the CURRENT token (read on every call, so a refresh needs no reconnect)."""
        version = self._credentials.version
        if self._metadata_cache is None or self._metadata_cache[0] != version:
            settings = replace(self._settings, token=self._credentials.token)
            self._metadata_cache = (version, call_metadata(self._address, self._identity, settings))
        return self._metadata_cache[1]

    def _fail(self, err: grpc.aio.AioRpcError, what: str) -> FedClientError:
        # Every token this process held is scrubbed: a server may echo an earlier one back.
        return translate(err, what, self._target, self._token, self._credentials.secrets())

    def _check_open(self) -> None:
        if self._closed:
            raise TransientError(f"the link to {self._target} is closed")

    @contextlib.contextmanager
    def _closing_guard(self, what: str) -> Iterator[None]:
        """Report a call cut short by ``close()`` as TransientError, not as a cancellation.

        grpc.aio raises CancelledError in whoever awaits a call that close()
        cancelled; letting that escape would make a task runner look cancelled
        when only its connection went away.
        """
        try:
            yield
        except asyncio.CancelledError:
            if self._closed and not _being_cancelled():
                raise TransientError(f"{what} interrupted: the link to {self._target} was closed") from None
            raise

    # ----------------------------------------------------------------- tasks --

    async def tasks(self) -> AsyncIterator[Task]:
        """Subscribe to the combiner's TaskStream and yield the tasks meant for us.

        The stream has no deadline: it is meant to stay open. A dead connection
        is noticed by the channel's keepalive (a 60 s ping, 20 s to answer),
        which fails the stream with UNAVAILABLE -> TransientError.
        """
        self._check_open()
        call = self._combiner.TaskStream(conv.subscription_pb(self._identity), metadata=self._metadata())
        self._streams.add(call)
        try:
            async for request in call:
                task = conv.task_from_pb(request)
                if task is None:
                    log.warning(
                        "ignoring a request of type %d from %r: its sender is not a combiner (role %d)",
                        request.type,
                        request.sender.name,
                        request.sender.role,
                    )
                    continue
                yield task
        except grpc.aio.AioRpcError as err:
            raise self._fail(err, "task stream") from None
        except asyncio.CancelledError:
            if self._closed and not _being_cancelled():  # see _closing_guard
                raise TransientError(
                    f"task stream interrupted: the link to {self._target} was closed"
                ) from None
            raise
        finally:
            self._streams.discard(call)
            call.cancel()
        raise StreamEnded(f"the combiner {self._target} closed the task stream")

    # ----------------------------------------------------------- unary calls --

    async def _unary(self, method: Any, request: Any, what: str) -> None:
        self._check_open()
        try:
            with self._closing_guard(what):
                await method(request, timeout=self._rpc_timeout, metadata=self._metadata())
        except grpc.aio.AioRpcError as err:
            raise self._fail(err, what) from None

    async def _deliver(self, method: Any, request: Any, what: str) -> None:
        """A result-carrying call: a failure after the request may have left is DeliveryUncertain."""
        self._check_open()  # raises TransientError: provably never sent
        # Connected when the call starts: the request goes out at once, so a call cut short
        # later may have arrived, even if the connection dropped before close() ran (the
        # combiner died with the request in hand: the channel leaves READY first).
        started_ready = self._channel.get_state() is grpc.ChannelConnectivity.READY
        try:
            with self._closing_guard(what):
                await method(request, timeout=self._rpc_timeout, metadata=self._metadata())
        except grpc.aio.AioRpcError as err:
            error = self._fail(err, what)
            if isinstance(error, TransientError) and not never_sent(err):
                raise DeliveryUncertain(str(error)) from None
            raise error from None
        except TransientError as exc:  # close() cut the call short
            if started_ready or self._ready_at_close:  # it may have left on a live connection
                raise DeliveryUncertain(str(exc)) from None
            raise  # no connection all along: the call was still waiting to be sent

    async def heartbeat(self, usage: ResourceUsage | None = None) -> None:
        await self._unary(
            self._connector.SendHeartbeat, conv.heartbeat_pb(self._identity, usage), "heartbeat"
        )

    async def send_telemetry(self, usage: ResourceUsage) -> None:
        await self._unary(
            self._combiner.SendTelemetryMessage, conv.telemetry_pb(usage, self._identity), "telemetry"
        )

    async def send_backward_completion(self, completion: BackwardCompletion) -> None:
        await self._unary(
            self._combiner.SendBackwardCompletion,
            conv.backward_completion_pb(completion, self._identity),
            f"backward completion of gradients {completion.gradient_id}",
        )

    async def send_status(self, report: TaskStatus) -> None:
        await self._unary(self._connector.SendStatus, conv.status_pb(report, self._identity), "status")

    async def send_update(self, update: ModelUpdate) -> None:
        await self._deliver(
            self._combiner.SendModelUpdate,
            conv.update_pb(update, self._identity),
            f"model update {update.model_update_id}",
        )

    async def send_validation(self, validation: Validation) -> None:
        await self._deliver(
            self._combiner.SendModelValidation,
            conv.validation_pb(validation, self._identity),
            f"validation of model {validation.model_id}",
        )

    async def send_prediction(self, prediction: Prediction) -> None:
        await self._unary(
            self._combiner.SendModelPrediction,
            conv.prediction_pb(prediction, self._identity),
            f"prediction of model {prediction.model_id}",
        )

    async def send_metric(self, report: MetricReport) -> None:
        await self._unary(
            self._combiner.SendModelMetric, conv.metric_pb(report, self._identity), "model metric"
        )

    async def send_attributes(self, report: AttributeReport) -> None:
        await self._unary(
            self._combiner.SendAttributeMessage, conv.attributes_pb(report, self._identity), "attributes"
        )

    # -------------------------------------------------------------- transfer --

    async def download(self, model_id: str, dest: Path) -> int:
        self._check_open()
        with self._closing_guard(f"download of model {model_id}"):
            return await self._transfer.download(model_id, dest)

    async def has_model(self, model_id: str) -> bool:
        self._check_open()
        with self._closing_guard(f"probe for model {model_id}"):
            return await self._transfer.has_model(model_id)

    async def upload(self, model_id: str, src: Path) -> int:
        self._check_open()
        with self._closing_guard(f"upload of model {model_id}"):
            return await self._transfer.upload(model_id, src)

    # ----------------------------------------------------------------- close --

    async def close(self) -> None:
        """Cancel open streams and close the channel; safe to call twice."""
        if self._closed:
            return
        self._ready_at_close = self._channel.get_state() is grpc.ChannelConnectivity.READY
        self._closed = True
        for call in list(self._streams):
            call.cancel()
        if self._owns_channel:
            await self._channel.close()


_NOT_GRPC = "not-grpc:"


def _speaks_http1(details: str) -> bool:
    text = details.lower()
    return "failed parsing http/2" in text or "http1.x server" in text


async def _tls_problem(channel: grpc.aio.Channel) -> str | None:
    """Why the channel cannot connect, if retrying will not fix it: a certificate problem, or a
    server that answers in HTTP/1 (the controller's port, a web server) - ``_NOT_GRPC`` + details.

    gRPC reports only the last address it tried, and a name like localhost has
    several (::1 may just refuse), so a few quick probes are made.
    """
    for _ in range(3):
        try:
            await fedn_pb2_grpc.ConnectorStub(channel).SendHeartbeat(fedn_pb2.Heartbeat(), timeout=1.0)
            return None
        except grpc.aio.AioRpcError as err:
            code, details = err.code().name, err.details() or ""
        if grpc_verdict(code, details).kind is Failure.PERMANENT and _speaks_http1(details):
            return _NOT_GRPC + details.rsplit(": ", 1)[-1]
        marker = details.find("CERTIFICATE_VERIFY_FAILED")
        if marker >= 0:
            reason = details[marker + len("CERTIFICATE_VERIFY_FAILED") :].strip(" :").removesuffix(": OK")
            return f"certificate verify failed ({reason})"
        if "handshake failed" in details.lower() and "WRONG_VERSION_NUMBER" not in details:
            return details.rsplit("andshake failed", 1)[-1].strip(" :()")
    return None


def _being_cancelled() -> bool:
    """True when the running task has a pending cancel().

    Python 3.10 cannot tell (no ``Task.cancelling``). There we assume the
    CancelledError came from ``close()``: the lifecycle closes a link only after
    the reader, never while it is cancelling the task worker that uses it.
    """
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return cancelling is not None and cancelling() > 0
