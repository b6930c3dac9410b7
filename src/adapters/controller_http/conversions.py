"""How FEDn's controller names a combiner, turned into a domain ``CombinerAddress``."""

from __future__ import annotations

from ...domain.model import CombinerAddress

# A combiner with a public name (fqdn) is dialled on this port, whatever port it listens on, as FEDn does.
FQDN_PORT = 443


def combiner_address(host: str, port: int, fqdn: str | None = None) -> CombinerAddress:
    """An assigned combiner's address: an fqdn means ``fqdn:443``, host and port are then informational."""
    return CombinerAddress(host, port, fqdn, dial=(fqdn, FQDN_PORT) if fqdn else None)
