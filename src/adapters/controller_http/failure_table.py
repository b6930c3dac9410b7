"""What a failed controller call means: every HTTP status (and a failure below HTTP) as a domain verdict.

Total over 100-599: specific statuses first, then the status class, so no status falls
through to "retry forever" (``tests/unit/test_failure_table.py`` checks that).
"""

from __future__ import annotations

from ...domain.failures import Failure, Verdict
from ..failure_texts import text_verdict

WRONG_CONTROLLER = "is this a FEDn 0.33 controller? check --api-url/--api-port"

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


def http_verdict(status: int) -> Verdict:
    """The verdict for an HTTP status that was not the answer we wanted (any 100-599)."""
    if status in _HTTP_SPECIFIC:
        return _HTTP_SPECIFIC[status]
    return _HTTP_CLASSES.get(status // 100, Verdict(Failure.PERMANENT, f"a malformed HTTP status {status}"))


def transport_verdict(details: str) -> Verdict:
    """A failure below HTTP (no status at all): transient unless its text says otherwise."""
    by_text = text_verdict(details)
    return by_text if by_text is not None else Verdict(Failure.TRANSIENT, "the server is unreachable")
