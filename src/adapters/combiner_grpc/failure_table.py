"""What a failed gRPC call means: every gRPC status code, by name, mapped to a domain verdict.

Total: every code has an entry, so no code falls through to "retry forever"
(``tests/unit/test_failure_table.py`` checks that). Codes are named as
``grpc.StatusCode.X.name``, so the table needs no grpc import.
"""

from __future__ import annotations

from ...domain.failures import Failure, Verdict
from ..failure_texts import text_verdict

WRONG_COMBINER = "is this a FEDn 0.33 combiner? wrong host or port?"

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


def grpc_verdict(code_name: str, details: str = "") -> Verdict:
    """The verdict for a failed gRPC call; an unheard-of code name is treated as PERMANENT."""
    by_text = text_verdict(details)
    if by_text is not None:
        return by_text
    return GRPC.get(code_name, Verdict(Failure.PERMANENT, f"unknown gRPC status {code_name}"))
