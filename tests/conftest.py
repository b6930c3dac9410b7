"""Session-wide test setup.

Compute packages run with the `python` that PATH gives (as FEDn's shell runs them), so
the tests put this venv's bin first on PATH, as an activated venv would: the example
packages then find numpy and scikit-learn there. The interop tier sets PATH per client
itself (fedclient runs from a venv without those libraries, as at a site).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Loading the app makes the domain's messages name settings as its users set them (flags,
# FEDN_* variables), as every entry point does; tests that build the domain directly see the same.
import fedclient.app  # noqa: F401

_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = os.pathsep.join(p for p in (_BIN, os.environ.get("PATH", "")) if p)
