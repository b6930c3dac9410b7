"""Ask a FEDn 0.33 controller which combiner to use: ``POST /api/v1/clients/add``.

Every reply, including the odd ones FEDn really sends (a 200 whose body is a JSON
list, 5xx, HTML error pages), becomes a domain ``Assignment``. The lifecycle decides
what to do with it; nothing here retries or raises on a bad answer.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from ...domain.failures import Failure
from ...domain.model import Assignment, AssignmentRequest, AssignmentStatus
from ._transport import (
    TRANSPORT_ERRORS,
    ControllerHttp,
    body_message,
    classify_http_error,
    not_json,
    parse_json,
    read_capped,
    retry_after,
)
from .conversions import combiner_address
from .failure_table import http_verdict

log = logging.getLogger(__name__)

ADD_CLIENT_PATH = "api/v1/clients/add"
_TRY_AGAIN = "the controller asked us to try again"


def request_body(request: AssignmentRequest) -> dict[str, Any]:
    """The add-client JSON. The preferred combiner goes under both keys: FEDn's client
    sends ``preferred_combiner`` but its server reads ``combiner_preferred``."""
    preferred = request.preferred_combiner or ""
    return {
        "name": request.identity.name,
        "client_id": request.identity.client_id,
        "preferred_combiner": preferred,
        "combiner_preferred": preferred,
        "package": request.package.value,
    }


def _port(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        port = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return port if 1 <= port <= 65535 else None


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def parse_assigned(data: dict[str, Any], request: AssignmentRequest) -> Assignment:
    """Turn an ``assigned`` body into an Assignment, refusing one we could not dial."""
    host, fqdn, port = _text(data.get("host")), _text(data.get("fqdn")), _port(data.get("port"))
    if fqdn is not None:
        address = combiner_address(host or fqdn, port or 443, fqdn)
    elif host is not None and port is not None:
        address = combiner_address(host, port)
    else:
        return Assignment(
            AssignmentStatus.UNMATCHED_CONFIG,
            f"the controller assigned a combiner without a usable address "
            f"(host={data.get('host')!r}, port={data.get('port')!r}, fqdn={data.get('fqdn')!r})",
        )
    return Assignment(
        AssignmentStatus.ASSIGNED,
        f"assigned to combiner {address.target}",
        combiner=address,
        client_id=_text(data.get("client_id")) or request.identity.client_id,
        helper_type=_text(data.get("helper_type")) or "",
    )


class HttpxDiscovery(ControllerHttp):
    """``Discovery`` over httpx. Construct with a ControllerEndpoint; close with ``aclose()``."""

    async def assign(self, request: AssignmentRequest) -> Assignment:
        url = self.endpoint.url(ADD_CLIENT_PATH)
        try:
            async with self.client().stream(
                "POST", url, json=request_body(request), headers=self.headers(), timeout=self.timeout
            ) as response:
                body = await read_capped(response)
        except TRANSPORT_ERRORS as exc:
            retryable, reason = classify_http_error(exc)
            status = AssignmentStatus.UNREACHABLE if retryable else AssignmentStatus.UNMATCHED_CONFIG
            return Assignment(status, self.redact(f"cannot reach the controller at {url}: {reason}"))
        assignment = self._interpret(url, response, body, request)
        log.debug("add-client %s -> HTTP %s: %s", url, response.status_code, assignment.status.value)
        return assignment

    def _interpret(
        self, url: str, response: httpx.Response, body: bytes, request: AssignmentRequest
    ) -> Assignment:
        code = response.status_code
        data = parse_json(body)
        message = self.redact(body_message(body, data))
        if code == 203:
            return Assignment(AssignmentStatus.TRY_AGAIN, message or _TRY_AGAIN)
        if 200 <= code < 300:
            return self._interpret_ok(url, code, data, body, message, request)
        if code == 400 and message.strip().rstrip(".").lower() == "no combiner available":
            # FEDn says this while its combiners are (re)starting: worth waiting for.
            return Assignment(AssignmentStatus.TRY_AGAIN, f"the controller has no combiner yet ({message})")
        verdict = http_verdict(code)  # the one table shared with gRPC (domain.failures)
        if 300 <= code < 400:
            where = response.headers.get("location", "?")
            return Assignment(
                AssignmentStatus.UNMATCHED_CONFIG,
                f"the controller at {url} redirects to {where} (HTTP {code}); use that address as --api-url",
            )
        if verdict.kind is Failure.AUTH or verdict.credentials:
            hint = "" if self.has_token else " (no token was given: pass one with --token)"
            return Assignment(
                AssignmentStatus.UNAUTHORIZED,
                f"the controller refused our credentials (HTTP {code}): {message or 'no reason given'}{hint}",
                refreshable=verdict.kind is Failure.AUTH,
            )
        if code == 404:
            return Assignment(
                AssignmentStatus.UNMATCHED_CONFIG,
                f"no FEDn controller API at {url} (HTTP 404) — check --api-url/--api-port",
            )
        if code == 410:
            return Assignment(
                AssignmentStatus.UNMATCHED_CONFIG,
                f"this server speaks an older/newer API than FEDn 0.33 (HTTP 410 from {url}): {message}",
            )
        if verdict.kind is Failure.TRANSIENT:
            return Assignment(
                AssignmentStatus.UNREACHABLE,
                f"the controller at {url} is unavailable (HTTP {code}): {message or 'no details'}",
                retry_after=retry_after(response.headers.get("retry-after")),
            )
        return Assignment(
            AssignmentStatus.UNMATCHED_CONFIG,
            f"the controller at {url} rejected the request (HTTP {code}): {message or 'no reason given'}"
            f" — {verdict.hint}",
        )

    def _interpret_ok(
        self, url: str, code: int, data: Any, body: bytes, message: str, request: AssignmentRequest
    ) -> Assignment:
        if isinstance(data, dict):
            status = data.get("status")
            if status == "assigned":
                return parse_assigned(data, request)
            if status == "retry":
                return Assignment(AssignmentStatus.TRY_AGAIN, message or _TRY_AGAIN)
        if data is None:
            # Not JSON at all: something else (a proxy, a captive portal, a half-started
            # server) answered for the controller. That can pass; retry, with a clear message.
            return Assignment(AssignmentStatus.UNREACHABLE, not_json(url, code, body))
        # FEDn 0.33 answers "preferred combiner not found" with HTTP 200 and a JSON list
        # ([{...}, 400]); that and any other unexpected shape is a refusal, not a success.
        shape = type(data).__name__ if data is not None else "non-JSON"
        return Assignment(
            AssignmentStatus.UNMATCHED_CONFIG,
            f"the controller did not assign a combiner (HTTP {code}, {shape} reply from {url}): "
            f"{message or 'no details'}",
        )
