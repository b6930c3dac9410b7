"""Fetch the active compute package and its checksum from a FEDn 0.33 controller.

The body goes to disk chunk by chunk under a temporary name and is renamed only when
complete, so a half-downloaded package never looks like a real one. The server's file
name is only a hint: it is reduced to a safe base name inside ``dest_dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from email.message import Message
from pathlib import Path

import httpx

from ...domain.credentials import Credentials
from ...domain.errors import (
    AuthError,
    ConfigError,
    FedClientError,
    PackageError,
    PermanentError,
    TransientError,
)
from ...domain.failures import Failure
from ...domain.model import FetchedPackage
from ...domain.observe import NULL_OBSERVER, Observer, TransferKind
from ...domain.package import safe_filename
from ._transport import (
    TRANSPORT_ERRORS,
    ClientCert,
    ControllerHttp,
    Verify,
    body_message,
    classify_http_error,
    not_json,
    parse_json,
    read_capped,
)
from ._transport import (
    retry_after as header_retry_after,
)
from .endpoint import ControllerEndpoint
from .failure_table import http_verdict

log = logging.getLogger(__name__)

DOWNLOAD_PATH = "api/v1/packages/download"
CHECKSUM_PATH = "api/v1/packages/checksum"
CHUNK_BYTES = 256 * 1024
DEFAULT_MAX_PACKAGE_BYTES = 512 * 1024 * 1024
_MAX_NAME = 200
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def filename_from_disposition(value: str | None) -> str | None:
    """The ``filename`` (or RFC 2231 ``filename*``) of a Content-Disposition header."""
    if not value:
        return None
    msg = Message()
    msg["content-disposition"] = value
    try:
        name = msg.get_filename()
    except (ValueError, LookupError):  # malformed RFC 2231 parts
        return None
    return name or None


def local_name(disposition: str | None) -> str:
    """A base name safe to create in the download directory, whatever the server said."""
    name = safe_filename(filename_from_disposition(disposition))
    # Keep the end: the suffix tells people (and FEDn's unpacker) what the file is.
    return name[-_MAX_NAME:]


class HttpxPackageSource(ControllerHttp):
    """``PackageSource`` over httpx. Construct with a ControllerEndpoint; close with ``aclose()``."""

    def __init__(
        self,
        endpoint: ControllerEndpoint,
        token: str | Credentials | None = None,
        auth_scheme: str = "Bearer",
        verify: Verify = True,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        max_bytes: int = DEFAULT_MAX_PACKAGE_BYTES,
        client_cert: ClientCert | None = None,
        observer: Observer = NULL_OBSERVER,
        name: str | None = None,
    ) -> None:
        self._observer = observer
        # FEDn's ``?name=``: a stored package by its file name instead of the active one.
        self._params = {"name": name} if name else None
        super().__init__(endpoint, token, auth_scheme, verify, timeout, client, client_cert)
        self._max_bytes = max_bytes
        if not 64 * 1024 <= chunk_bytes <= 1024 * 1024:
            raise ValueError("chunk_bytes must be between 64 KiB and 1 MiB")
        self._chunk_bytes = chunk_bytes

    async def download(self, dest_dir: Path) -> Path:
        fetched = await self.fetch(dest_dir)
        assert fetched.path is not None  # nothing was asked conditionally
        return fetched.path

    async def fetch(self, dest_dir: Path, unchanged_tag: str | None = None) -> FetchedPackage:
        """Download the package; with ``unchanged_tag`` (an ETag from before) a conditional GET.

        FEDn's controller serves the file with an ETag and answers 304 Not Modified when
        If-None-Match names the current one, so an unchanged package costs no download.
        """
        url = self.endpoint.url(DOWNLOAD_PATH)
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PackageError(
                f"cannot create the package directory {dest_dir}: {exc.strerror or exc}"
            ) from None
        headers = self.headers()
        if unchanged_tag:
            headers["If-None-Match"] = unchanged_tag
        try:
            async with self.client().stream(
                "GET", url, headers=headers, params=self._params, timeout=self.timeout
            ) as response:
                if response.status_code == 304 and unchanged_tag:
                    return FetchedPackage(None, unchanged_tag)
                if response.status_code != 200:
                    body = await read_capped(response)
                    raise self._error(
                        url,
                        "package download",
                        response.status_code,
                        body,
                        response.headers.get("retry-after"),
                    )
                target = dest_dir / local_name(response.headers.get("content-disposition"))
                written = await self._save(response, target)
                tag = response.headers.get("etag") or None
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(url, exc) from None
        log.info("downloaded compute package %s (%d bytes)", target.name, written)
        return FetchedPackage(target, tag)

    async def _save(self, response: httpx.Response, target: Path) -> int:
        """Stream the body into ``target`` via a temporary file; remove it on any failure."""
        part = target.with_name(f".{target.name}.part")
        expected = response.headers.get("content-length")
        too_big = PackageError(
            f"the compute package from {response.url} is larger than the download limit of "
            f"{self._max_bytes} bytes; refused (raise --max-package-bytes if it is genuine)"
        )
        if expected is not None and expected.isdigit() and int(expected) > self._max_bytes:
            raise too_big
        written = 0
        total = int(expected) if expected is not None and expected.isdigit() else None
        progress = self._observer.transfer(TransferKind.PACKAGE_DOWNLOAD, target.name, total)
        ok = False
        try:
            with part.open("wb") as out:
                async for chunk in response.aiter_bytes(self._chunk_bytes):
                    written += len(chunk)
                    if written > self._max_bytes:  # counted as it streams: no header is trusted
                        raise too_big
                    await asyncio.to_thread(out.write, chunk)  # disk work off the event loop
                    progress.advance(len(chunk))
            # Content-Length counts bytes on the wire, which differ from ``written`` when a
            # proxy applied Content-Encoding; compare like with like.
            encoded = response.headers.get("content-encoding", "identity").strip().lower() != "identity"
            received = response.num_bytes_downloaded if encoded else written
            if expected is not None and expected.isdigit() and int(expected) != received:
                raise TransientError(
                    f"the package download was cut short: got {received} of {expected} bytes"
                )
            await asyncio.to_thread(os.replace, part, target)
            ok = True
        except BaseException as exc:
            with contextlib.suppress(OSError):
                part.unlink()
            if isinstance(exc, OSError):
                reason = exc.strerror or exc
                raise PackageError(f"cannot write the compute package to {target}: {reason}") from None
            raise
        finally:
            progress.finish(ok)
        return written

    async def checksum(self) -> str | None:
        url = self.endpoint.url(CHECKSUM_PATH)
        try:
            async with self.client().stream(
                "GET", url, headers=self.headers(), params=self._params, timeout=self.timeout
            ) as response:
                body = await read_capped(response)
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(url, exc) from None
        code = response.status_code
        if code == 404:
            return None  # FEDn: no package uploaded, or it could not find the file to hash
        if not 200 <= code < 300:
            raise self._error(url, "package checksum", code, body, response.headers.get("retry-after"))
        data = parse_json(body)
        if data is None:
            raise TransientError(not_json(url, code, body))
        if not isinstance(data, dict):
            raise PackageError(
                f"the controller's checksum reply from {url} is JSON {type(data).__name__}, not an object"
            )
        value = data.get("checksum")
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value.strip()):
            raise PackageError(f"the controller sent a malformed package checksum: {str(value)[:80]!r}")
        return value.strip().lower()

    def _error(
        self, url: str, what: str, code: int, body: bytes, retry_after: str | None = None
    ) -> FedClientError:
        message = self.redact(body_message(body)) or "no details"
        if code == 404:
            return PackageError(
                f"the controller has no active compute package (HTTP 404 from {url}: {message}) — "
                "set an active package on the controller, or check --api-url/--api-port"
            )
        verdict = http_verdict(code)  # the one table shared with gRPC (domain.failures)
        if verdict.kind is Failure.AUTH or verdict.credentials:
            hint = "" if self.has_token else " (no token was given: pass one with --token)"
            return AuthError(
                f"the controller refused our credentials for the {what} (HTTP {code}): {message}{hint}",
                refreshable=verdict.kind is Failure.AUTH,
            )
        if verdict.kind is Failure.TRANSIENT:
            return TransientError(
                f"the controller could not serve the {what} (HTTP {code}): {message}",
                retry_after=header_retry_after(retry_after),
            )
        if code == 410:
            return ConfigError(f"this server speaks an older/newer API than FEDn 0.33 (HTTP 410 from {url})")
        return PermanentError(
            f"the controller refused the {what} (HTTP {code} from {url}): {message} — {verdict.hint}"
        )

    def _transport_error(self, url: str, exc: Exception) -> FedClientError:
        retryable, reason = classify_http_error(exc)
        message = self.redact(f"cannot reach the controller at {url}: {reason}")
        return TransientError(message) if retryable else ConfigError(message)
