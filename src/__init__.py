"""fedclient: a federated-learning client wire-compatible with FEDn 0.33.

The installed distribution has this one import root. Its subpackages are the
hexagon: ``fedclient.domain`` (the rules, standard library only),
``fedclient.adapters`` (one technology each), ``fedclient.app`` (settings,
wiring, CLI) and ``fedclient.network.clients`` (the Python API, named as FEDn's).

The Python API is re-exported here and imported on first use, so ``import fedclient``
stays cheap: ``from fedclient import Client, InProcessClient, log_metric``.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import Any

try:
    __version__ = _metadata.version("fedclient")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# name -> module that defines it (relative to this package)
_EXPORTS = {
    "Client": ".network.clients.client",
    "ConnectorClient": ".network.clients.connect",
    "Status": ".network.clients.connect",
    "PackageRuntime": ".network.clients.package",
    "ClientState": ".network.clients.state",
    "ClientStateToString": ".network.clients.state",
    "InProcessClient": ".network.clients.inprocess",
    "log_metric": ".adapters.trainers.callback_trainer",
    "log_attributes": ".adapters.trainers.callback_trainer",
    "load_model": ".adapters.model_npz",
    "save_model": ".adapters.model_npz",
}
_ALIASES = {"load_model": "load_arrays", "save_model": "save_arrays"}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fedclient' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
