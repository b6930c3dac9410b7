"""One error table for every transport: what a failed call means and what the client does next.

The adapters name what went wrong in their own terms (a gRPC status code name, an HTTP
status, the text of the failure) and ask this table for the verdict:

* ``TRANSIENT`` - back off and try again (the server is down, restarting, overloaded);
* ``AUTH``      - our token was refused: refresh it once, then stop with a clear message;
* ``PERMANENT`` - retrying cannot change the answer (wrong server or port, a bad request,
  a certificate that does not verify): stop at once, naming the likely cause.

Pure and total: every gRPC status code and every HTTP status has an entry, so no code
falls through to "retry forever". ``tests/unit/test_failure_table.py`` checks that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .errors import AuthError, FedClientError, PermanentError, TransientError


class Failure(enum.Enum):
    TRANSIENT = "transient"
    AUTH = "auth"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Verdict:
    kind: Failure
    hint: str = ""  # the likely cause, for the user; empty when the server's text says it all
    # PERMANENT about the credentials themselves (a valid token without the right role):
    # reported as a non-refreshable AuthError, since a new token of the same kind will not help.
    credentials: bool = False


WRONG_COMBINER = "is this a FEDn 0.33 combiner? wrong host or port?"
WRONG_CONTROLLER = "is this a FEDn 0.33 controller? check --api-url/--api-port"

# Every gRPC status code, by name (grpc.StatusCode.X.name), so the domain needs no grpc import.
GRPC: dict[str, Verdict] = {
    "OK": Verdict(Failure.TRANSIENT, "the call ended without a reply"),
    "CANCELLED": Verdict(Failure.TRANSIENT, "the call was cancelled (connection lost or server stopping)"),
    "UNKNOWN": Verdict(Failure.TRANSIENT, "the combiner failed while handling the call"),
    "INVALID_ARGUMENT": Verdict(Failure.PERMANENT, f"the combiner rejected the request: {WRONG_COMBINER}"),
    "DEADLINE_EXCEEDED": Verdict(Failure.TRANSIENT, "no answer in time"),
    "NOT_FOUND": Verdict(Failure.PERMANENT, f"the combiner has no such resource: {WRONG_COMBINER}"),
    "ALREADY_EXISTS": Verdict(Failure.PERMANENT, "the combiner says it exists already"),
    "PERMISSION_DENIED": Verdict(
        Failure.PERMANENT, "the token is valid but not allowed here (it needs the 'client' role)", True
    ),
    "RESOURCE_EXHAUSTED": Verdict(Failure.TRANSIENT, "the combiner is overloaded"),
    "FAILED_PRECONDITION": Verdict(Failure.PERMANENT, "the combiner is not in a state to accept this"),
    "ABORTED": Verdict(Failure.TRANSIENT, "the call was aborted"),
    "OUT_OF_RANGE": Verdict(Failure.PERMANENT, "the request is out of range"),
    "UNIMPLEMENTED": Verdict(
        Failure.PERMANENT, f"the server does not offer FEDn's client services: {WRONG_COMBINER}"
    ),
    "INTERNAL": Verdict(Failure.TRANSIENT, "the connection or the combiner failed (e.g. stream removed)"),
    "UNAVAILABLE": Verdict(Failure.TRANSIENT, "the combiner is unreachable or restarting"),
    "DATA_LOSS": Verdict(Failure.TRANSIENT, "data was lost in transit"),
    "UNAUTHENTICATED": Verdict(Failure.AUTH, "the combiner refused the token"),
}

# Failure texts that say more than their code: checked first, in order (lower-case substrings).
TEXT_RULES: tuple[tuple[str, Verdict], ...] = (
    ("failed parsing http/2", Verdict(Failure.PERMANENT, "that port does not speak gRPC (HTTP/2)")),
    (
        "http1.x server",
        Verdict(Failure.PERMANENT, "that port speaks HTTP/1, not gRPC: is it the controller's?"),
    ),
    ("certificate_verify_failed", Verdict(Failure.PERMANENT, "the server's TLS certificate does not verify")),
    ("certificate verify failed", Verdict(Failure.PERMANENT, "the server's TLS certificate does not verify")),
    ("wrong_version_number", Verdict(Failure.PERMANENT, "TLS to a plaintext port (or the reverse)?")),
    ("ssl handshake failed", Verdict(Failure.PERMANENT, "the TLS handshake failed")),
    ("connection reset", Verdict(Failure.TRANSIENT, "the connection was reset")),
    ("stream removed", Verdict(Failure.TRANSIENT, "the stream was removed (connection lost)")),
)

_HTTP_SPECIFIC: dict[int, Verdict] = {
    401: Verdict(Failure.AUTH, "the controller refused the token"),
    403: Verdict(Failure.PERMANENT, "the token is valid but not allowed here", credentials=True),
    404: Verdict(Failure.PERMANENT, f"no such API path: {WRONG_CONTROLLER}"),
    405: Verdict(Failure.PERMANENT, f"method not allowed: {WRONG_CONTROLLER}"),
    408: Verdict(Failure.TRANSIENT, "the controller timed out reading the request"),
    410: Verdict(Failure.PERMANENT, "this server speaks an older/newer API than FEDn 0.33"),
    425: Verdict(Failure.TRANSIENT, "the controller asked us to wait"),
    429: Verdict(Failure.TRANSIENT, "the controller is rate-limiting us"),
    501: Verdict(Failure.PERMANENT, f"the server does not implement this: {WRONG_CONTROLLER}"),
    505: Verdict(Failure.PERMANENT, "the server does not speak this HTTP version"),
}
_HTTP_CLASSES: dict[int, Verdict] = {
    1: Verdict(Failure.TRANSIENT, "an interim reply where a final one was expected"),
    2: Verdict(Failure.PERMANENT, f"an unexpected success reply: {WRONG_CONTROLLER}"),
    3: Verdict(Failure.PERMANENT, "a redirect: use the address it points to as --api-url"),
    4: Verdict(Failure.PERMANENT, "the controller rejected the request"),
    5: Verdict(Failure.TRANSIENT, "the controller (or a proxy before it) is failing or restarting"),
}


def grpc_verdict(code_name: str, details: str = "") -> Verdict:
    """The verdict for a failed gRPC call; an unheard-of code name is treated as PERMANENT."""
    text = details.lower()
    for marker, verdict in TEXT_RULES:
        if marker in text:
            return verdict
    return GRPC.get(code_name, Verdict(Failure.PERMANENT, f"unknown gRPC status {code_name}"))


def http_verdict(status: int) -> Verdict:
    """The verdict for an HTTP status that was not the answer we wanted (any 100-599)."""
    if status in _HTTP_SPECIFIC:
        return _HTTP_SPECIFIC[status]
    return _HTTP_CLASSES.get(status // 100, Verdict(Failure.PERMANENT, f"a malformed HTTP status {status}"))


def transport_verdict(details: str) -> Verdict:
    """A failure below HTTP/gRPC (no status at all): transient unless its text says otherwise."""
    text = details.lower()
    for marker, verdict in TEXT_RULES:
        if marker in text:
            return verdict
    return Verdict(Failure.TRANSIENT, "the server is unreachable")


def error_for(
    verdict: Verdict, message: str, retry_after: float | None = None, show_hint: bool = True
) -> FedClientError:
    """The domain error the verdict calls for; the hint is appended to ``message``."""
    text = f"{message} — {verdict.hint}" if show_hint and verdict.hint else message
    if verdict.kind is Failure.AUTH:
        return AuthError(text, refreshable=True)
    if verdict.credentials:
        return AuthError(text, refreshable=False)
    if verdict.kind is Failure.PERMANENT:
        return PermanentError(text)
    return TransientError(text, retry_after=retry_after)


MAX_RETRY_AFTER = 600.0  # a server asking for more than ten minutes is not taken literally


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP Retry-After value (delta-seconds or an HTTP date); None if unusable.

    An HTTP date is measured from ``now``, the wall-clock time (seconds since the epoch) the
    caller read; without ``now`` only the delta-seconds form is usable.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None or now is None:
        return None
    seconds = when.timestamp() - now
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
