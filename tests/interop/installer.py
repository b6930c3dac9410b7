"""How the test tiers' venvs are made: with uv when the project venv has it, else venv + pip.

uv (a dev dependency) creates a venv and installs the same packages from the same index in
seconds where pip takes minutes, which keeps ``make test`` from a fresh clone within its
budget. What ends up in the venv is the same either way: the FEDn server's pinned packages, or
fedclient as a site installs it. The torch venv keeps pip: only pip looks at the CPU torch
wheel this machine keeps on disk (uv would download a CUDA build of several GB).

uv installs without compiling bytecode unless asked, and this machine (like CI) runs with
``PYTHONDONTWRITEBYTECODE=1``, so nothing ever compiled it: every process the tests start
compiled its imports from source again. A FEDn controller took 5.5 s to import instead of
1.6 s, a test network 16 s to start instead of 4. So uv is asked (``--compile-bytecode``),
as pip does by default.
"""

from __future__ import annotations

import sys
from pathlib import Path


def uv_binary() -> Path | None:
    """The uv next to this interpreter (the project venv's), if installed."""
    uv = Path(sys.executable).parent / "uv"
    return uv if uv.exists() else None


def create_commands(base_python: str, venv: Path, *, pip_only: bool = False) -> list[list[str]]:
    """The commands that create ``venv`` from ``base_python``, with pip in it (scripts may use it)."""
    uv = None if pip_only else uv_binary()
    if uv is not None:
        return [[str(uv), "venv", "--quiet", "--seed", "--python", base_python, str(venv)]]
    python = str(venv / "bin" / "python")
    return [
        [base_python, "-m", "venv", str(venv)],
        [python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
    ]


def install_command(venv: Path, *packages: str, pip_only: bool = False) -> list[str]:
    """The command that installs ``packages`` (pip's requirement syntax, ``-e`` allowed) into ``venv``."""
    python = str(venv / "bin" / "python")
    uv = None if pip_only else uv_binary()
    if uv is not None:
        return [str(uv), "pip", "install", "--quiet", "--compile-bytecode", "--python", python, *packages]
    return [python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", *packages]
