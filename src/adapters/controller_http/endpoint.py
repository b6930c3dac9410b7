"""Where the controller's REST API lives, as one normalised base URL.

FEDn 0.33 builds its URLs by string concatenation (docs/PROTOCOL.md §1.1), so a custom
prefix without a trailing slash runs into the add-client path and the package URLs get a
double slash. We normalise once, here, and every path is built the same way from the
same base.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ...domain.errors import ConfigError

_SLASHES = re.compile(r"/{2,}")


def _is_loopback(host: str) -> bool:
    """Loopback hosts get plain http when no scheme was given (as FEDn does for localhost)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_host(rest: str) -> str:
    """The host part of a scheme-less ``host[:port][/path]`` string."""
    netloc = rest.split("/", 1)[0]
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    return netloc.split(":", 1)[0]


def _clean_path(*parts: str) -> str:
    """Join path pieces into ``/a/b`` (or ``""``): one slash between segments, none at the end."""
    joined = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    joined = _SLASHES.sub("/", joined)
    return f"/{joined}" if joined else ""


def _parse_port(api_port: int | str | None) -> int | None:
    if api_port is None or (isinstance(api_port, str) and not api_port.strip()):
        return None
    try:
        port = int(api_port)
    except (TypeError, ValueError):
        raise ConfigError(f"--api-port must be a number between 1 and 65535, got {api_port!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"--api-port must be between 1 and 65535, got {port}")
    return port


@dataclass(frozen=True)
class ControllerEndpoint:
    """The controller's base URL: ``scheme://host[:port][/path][/prefix]``, no trailing slash."""

    base: str

    @classmethod
    def build(cls, api_url: str, api_port: int | str | None = None, prefix: str = "") -> ControllerEndpoint:
        """Normalise ``--api-url``, ``--api-port`` and ``FEDN_CUSTOM_URL_PREFIX`` into one base.

        Without a scheme a loopback host gets ``http://`` and anything else ``https://``.
        A path already in ``api_url`` (Studio-style bases) is kept and the prefix goes
        after it. A port both in the URL and in ``api_port`` must agree.
        """
        raw = (api_url or "").strip()
        if not raw:
            raise ConfigError("no controller address given: set --api-url")
        if "://" not in raw:
            scheme = "http" if _is_loopback(_split_host(raw)) else "https"
            raw = f"{scheme}://{raw}"
        try:
            parts = urlsplit(raw)
            url_port = parts.port
        except ValueError as exc:
            raise ConfigError(f"--api-url {api_url!r} is not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ConfigError(f"--api-url must use http:// or https://, got {parts.scheme}://")
        if not parts.hostname:
            raise ConfigError(f"--api-url {api_url!r} has no host name")
        if parts.username is not None or parts.password is not None:
            raise ConfigError("--api-url must not carry credentials; pass the token with --token instead")
        if parts.query or parts.fragment:
            raise ConfigError(f"--api-url {api_url!r} must not contain a query string or fragment")
        port = _parse_port(api_port)
        if port is not None and url_port is not None and port != url_port:
            raise ConfigError(f"--api-url says port {url_port} but --api-port says {port}; give only one")
        port = port if port is not None else url_port
        host = parts.hostname
        host = f"[{host}]" if ":" in host else host
        netloc = f"{host}:{port}" if port is not None else host
        return cls(base=f"{scheme}://{netloc}{_clean_path(parts.path, prefix)}")

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``api/v1/clients/add`` (leading slash optional)."""
        return f"{self.base}{_clean_path(path)}"

    def __str__(self) -> str:
        return self.base
