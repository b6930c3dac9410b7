"""``ClientState`` and ``ClientStateToString`` under the names of FEDn's client API.

Both are the domain's own: ``ClientState.idle`` is ``ClientState.IDLE`` (1), then
``training`` (2), ``validating`` (3) and ``predicting`` (4).
"""

from __future__ import annotations

from ...domain.state import ClientState, client_state_to_string

ClientStateToString = client_state_to_string

__all__ = ["ClientState", "ClientStateToString"]
