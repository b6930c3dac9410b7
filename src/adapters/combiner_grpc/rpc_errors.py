"""One translation from gRPC status codes to the domain's errors.

The domain only distinguishes "fix your credentials" (AuthError, fatal) from
"try again later" (TransientError). FEDn gave up on DEADLINE_EXCEEDED, INTERNAL
and friends (PROTOCOL.md 7.3); we retry them, and log the codes nobody expects.
"""

from __future__ import annotations

import logging

import grpc
import grpc.aio

from ...domain.errors import AuthError, FedClientError, TransientError
from ...domain.redaction import redact, register_secret

log = logging.getLogger("fedclient.grpc")

_AUTH_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
_TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.ABORTED,
    }
)


def _one_line(text: str, token: str | None) -> str:
    register_secret(token)
    return " ".join(redact(text).split())


def translate(err: grpc.aio.AioRpcError, what: str, target: str, token: str | None = None) -> FedClientError:
    """Turn a failed call into the error the domain acts on.

    ``what`` names the call ("heartbeat", "download of model m1"); ``token`` is
    only used to scrub it from the server's text, never to show it.
    """
    code = err.code()
    details = _one_line(err.details() or "", token) or code.name
    if code in _AUTH_CODES:
        if token:
            return AuthError(f"the combiner refused the token: {details} ({what} to {target})")
        return AuthError(f"the combiner requires a token and none is set: {details} ({what} to {target})")
    if code not in _TRANSIENT_CODES:
        log.warning("unexpected gRPC status %s from %s during %s: %s", code.name, target, what, details)
    return TransientError(f"{what} to {target} failed: {code.name}: {details}")
