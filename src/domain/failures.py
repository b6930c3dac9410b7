"""One error model for every transport: what a failed call means and what the client does next.

The adapters name what went wrong in their own terms (a gRPC status code name, an HTTP
status, the text of the failure) and look it up in their tables
(``adapters/combiner_grpc/failure_table.py``, ``adapters/controller_http/failure_table.py``,
``adapters/failure_texts.py``), which answer with a verdict of this module:

* ``TRANSIENT`` - back off and try again (the server is down, restarting, overloaded);
* ``AUTH``      - our token was refused: refresh it once, then stop with a clear message;
* ``PERMANENT`` - retrying cannot change the answer (wrong server or port, a bad request,
  a certificate that does not verify): stop at once, naming the likely cause.

``error_for`` turns a verdict into the domain error the client acts on.
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
