"""One warning per process when our token is about to cross the network unencrypted."""

from __future__ import annotations

import ipaddress
import logging
import threading

log = logging.getLogger("fedclient.security")
_warned: set[str] = set()
_lock = threading.Lock()


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_plaintext_token(where: str, host: str) -> bool:
    """Warn (once per process) that the token goes over plaintext to a non-loopback ``host``."""
    if is_loopback(host):
        return False
    with _lock:
        if _warned:
            return False
        _warned.add(where)
    log.warning(
        "the token is sent unencrypted to %s: anyone on the network path can read it; "
        "use TLS (https:// for the controller, TLS for the combiner)",
        where,
    )
    return True
