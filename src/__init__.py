"""fedclient: a federated-learning client wire-compatible with FEDn 0.33.

The installed distribution has this one import root. Its subpackages are the
hexagon: ``fedclient.domain`` (the rules, standard library only),
``fedclient.adapters`` (one technology each) and ``fedclient.app`` (settings,
wiring, CLI).
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("fedclient")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
