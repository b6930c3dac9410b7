"""``ConnectorClient`` and ``Status``: one assignment request to the controller, FEDn's way.

A thin synchronous shell over the controller_http adapter: the request body, the
reading of every reply and the error wording are the adapter's; this class only
turns its ``Assignment`` into FEDn's ``(Status, config-or-message)`` pair.
"""

from __future__ import annotations

import enum
import logging
import os
import uuid
from typing import Any

from ...adapters.controller_http import ControllerEndpoint, HttpxDiscovery
from ...adapters.controller_http.token_refresh import refresh_access_token
from ...domain.errors import FedClientError
from ...domain.model import Assignment, AssignmentRequest, AssignmentStatus, Identity, PackageMode
from ._portal import Portal

log = logging.getLogger("fedclient.api")

HTTP_OK, HTTP_UNAUTHORIZED = 200, 401


class Status(enum.Enum):
    """FEDn's assignment outcomes, same names and numbers."""

    Unassigned = 0
    Assigned = 1
    TryAgain = 2
    UnAuthorized = 3
    UnMatchedConfig = 4


_STATUS = {
    AssignmentStatus.ASSIGNED: Status.Assigned,
    AssignmentStatus.TRY_AGAIN: Status.TryAgain,
    AssignmentStatus.UNAUTHORIZED: Status.UnAuthorized,
    AssignmentStatus.UNMATCHED_CONFIG: Status.UnMatchedConfig,
    AssignmentStatus.UNREACHABLE: Status.Unassigned,
}


def combiner_config(answer: Assignment, package: PackageMode) -> dict[str, Any]:
    """An assignment as the dict FEDn's controller answers with (what ``Client.connect`` takes)."""
    address = answer.combiner
    return {
        "status": "assigned",
        "host": address.host if address else None,
        "port": address.port if address else None,
        "fqdn": address.fqdn if address else None,
        "client_id": answer.client_id,
        "helper_type": answer.helper_type or "numpyhelper",
        "package": package.value,
        "message": answer.message,
    }


def base_url(host: str, force_ssl: bool) -> str:
    return host if "://" in host else f"{'https' if force_ssl else 'http'}://{host}"


class ConnectorClient:
    """Asks a FEDn controller for a combiner. ``verify`` checks the controller's TLS certificate."""

    def __init__(
        self,
        host: str,
        port: int | None,
        token: str | None,
        name: str,
        remote_package: bool,
        force_ssl: bool = False,
        verify: bool = False,
        combiner: str | None = None,
        id: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.name = name
        self.verify = verify
        self.preferred_combiner = combiner
        self.id = id or str(uuid.uuid4())
        self.package = PackageMode.REMOTE if remote_package else PackageMode.LOCAL
        self.endpoint = ControllerEndpoint.build(base_url(host, force_ssl), port)
        self.connect_string = self.endpoint.base
        if self.connect_string.startswith("https://") and not verify:
            log.warning("the controller's TLS certificate is not verified (verify=False, FEDn's default)")
        self._auth_scheme = os.environ.get("FEDN_AUTH_SCHEME", "Bearer")
        self._portal = Portal("fedclient-connector")

    def assign(self) -> tuple[Status, dict[str, Any] | str]:
        """One request: ``(Status.Assigned, combiner config)`` or ``(status, message)``."""
        request = AssignmentRequest(Identity(self.name, self.id), self.package, self.preferred_combiner)
        answer = self._portal.call(self._assign(request))
        if answer.status is AssignmentStatus.ASSIGNED:
            return Status.Assigned, combiner_config(answer, self.package)
        if answer.status is AssignmentStatus.UNAUTHORIZED and "token expired" in answer.message.lower():
            if HTTP_OK <= self.refresh_token() < 300:
                return Status.TryAgain, answer.message
            return Status.UnAuthorized, "Could not refresh token"
        return _STATUS[answer.status], answer.message

    async def _assign(self, request: AssignmentRequest) -> Assignment:
        async with HttpxDiscovery(self.endpoint, self.token, self._auth_scheme, self.verify) as discovery:
            return await discovery.assign(request)

    def refresh_token(self) -> int:
        """Get a new access token with FEDN_AUTH_REFRESH_TOKEN from FEDN_AUTH_REFRESH_TOKEN_URI.

        Returns an HTTP-like status (200 on success), as FEDn does; the new token replaces ``token``.
        """
        uri = os.environ.get("FEDN_AUTH_REFRESH_TOKEN_URI")
        refresh = os.environ.get("FEDN_AUTH_REFRESH_TOKEN")
        if not uri or not refresh:
            log.error("cannot refresh the token: set FEDN_AUTH_REFRESH_TOKEN_URI and FEDN_AUTH_REFRESH_TOKEN")
            return HTTP_UNAUTHORIZED
        try:
            self.token = self._portal.call(refresh_access_token(uri, refresh, self.verify))
        except FedClientError as exc:
            log.error("token refresh failed: %s", exc)
            return HTTP_UNAUTHORIZED
        log.info("token refreshed")
        return HTTP_OK

    def close(self) -> None:
        self._portal.close()
