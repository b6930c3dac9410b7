"""gRPC failures -> the domain's errors, through the one table in ``domain.failures``.

This module only knows how to read a grpc.aio error (its code name and details);
what the code *means* (retry, refresh the token, or stop) is the domain table's call,
shared with the HTTP adapters.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
import grpc.aio

from ...domain.errors import FedClientError
from ...domain.failures import Failure, error_for
from ...domain.redaction import redact, register_secret
from .failure_table import grpc_verdict


def _one_line(text: str, secrets: Iterable[str | None]) -> str:
    """The server's text on one line, with every secret we know (and these) scrubbed."""
    for secret in secrets:
        register_secret(secret)
    return " ".join(redact(text).split())


def translate(
    err: grpc.aio.AioRpcError,
    what: str,
    target: str,
    token: str | None = None,
    also_scrub: Iterable[str] = (),
) -> FedClientError:
    """Turn a failed call into the error the domain acts on.

    ``what`` names the call ("heartbeat", "download of model m1"); ``token`` is
    only used to scrub it (and ``also_scrub``) from the server's text, never to show it.
    """
    code = err.code()
    details = _one_line(err.details() or "", (token, *also_scrub)) or code.name
    verdict = grpc_verdict(code.name, details)
    if verdict.kind is Failure.AUTH:
        if token:
            message = f"the combiner refused the token: {details} ({what} to {target})"
        else:
            message = f"the combiner requires a token and none is set: {details} ({what} to {target})"
        return error_for(verdict, message, show_hint=False)
    return error_for(verdict, f"{what} to {target} failed: {code.name}: {details}")
