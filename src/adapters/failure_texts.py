"""Failure texts that say more than their status code, for every transport (gRPC, HTTP, TLS below them).

OpenSSL's, HTTP/2's and gRPC's own words for a wrong port or a certificate that does not
verify, matched as lower-case substrings, in order, before the status code is looked at.
"""

from __future__ import annotations

from ..domain.failures import Failure, Verdict

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


def text_verdict(details: str) -> Verdict | None:
    """The verdict a failure's text calls for, or None when it says nothing special."""
    text = details.lower()
    for marker, verdict in TEXT_RULES:
        if marker in text:
            return verdict
    return None
