"""Trade a refresh token for a new access token (FEDn: POST ``{"refresh": …}`` to the refresh URI).

FEDn 0.33 reads the URI and the refresh token from ``FEDN_AUTH_REFRESH_TOKEN_URI`` and
``FEDN_AUTH_REFRESH_TOKEN`` and takes ``access`` from the JSON reply.
"""

from __future__ import annotations

import httpx

from ...domain.errors import AuthError, TransientError
from ._transport import Verify, classify_http_error, parse_json, read_capped, tls_setting


async def refresh_access_token(
    uri: str, refresh_token: str, verify: Verify = True, timeout: float = 10.0
) -> str:
    """The new access token. AuthError when the server refuses, TransientError when unreachable."""
    try:
        async with (
            httpx.AsyncClient(verify=tls_setting(verify), timeout=timeout, follow_redirects=False) as client,
            client.stream("POST", uri, json={"refresh": refresh_token}) as response,
        ):
            body = await read_capped(response)
    except httpx.HTTPError as exc:
        _, reason = classify_http_error(exc)
        raise TransientError(f"cannot reach the token refresh URI: {reason}") from None
    code = response.status_code
    data = parse_json(body)
    access = data.get("access") if isinstance(data, dict) else None
    if 200 <= code < 300 and isinstance(access, str) and access:
        return access
    if code >= 500:
        raise TransientError(f"the token refresh URI could not answer (HTTP {code})")
    raise AuthError(f"the token refresh was refused (HTTP {code})")
