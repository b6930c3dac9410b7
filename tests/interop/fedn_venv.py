"""The separate virtualenvs that hold a real FEDn 0.33.0 server (and moto's S3).

fedn pins grpcio<=1.70 and protobuf<6.31 and needs Python < 3.13, while fedclient
needs grpcio>=1.85 and protobuf>=7, so the server can never share our venv. The venv
is cached: a stamp file records the requirement list and the interpreter, and the
install only runs again when either changed. A file lock keeps two concurrent
bootstraps (``make interop`` and a pytest run, two terminals) from racing.

``.fedn-torch-venv`` is the same server plus the libraries of FEDn's
``splitlearning_diabetes`` example (torch, pandas, scikit-learn). Its combiner runs FEDn's
own torch split-learning aggregator, and both clients run the example's scripts with
its ``python`` first on PATH. torch is the CPU build: pip takes this machine's
local wheel, where the example's pinned torch 2.4.1 would be a CUDA build of about
2.5 GB from PyPI.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

try:
    from .installer import create_commands, install_command
except ImportError:  # run as a script (`make fedn-venv`)
    from installer import create_commands, install_command  # type: ignore[import-not-found,no-redef]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO / ".fedn-venv"
# pyjwt, flask, grpcio... come with fedn; psutil is what our harness uses for cleanup checks.
REQUIREMENTS = ("fedn==0.33.0", "moto[server]==5.2.5", "psutil")
TORCH_VENV = REPO / ".fedn-torch-venv"
# The example's python_env pins, except torch (2.4.1 there) and torchvision (never imported).
TORCH_REQUIREMENTS = (*REQUIREMENTS, "torch==2.13.0", "numpy==2.0.2", "pandas==2.2.3", "scikit-learn==1.6.0")
_STAMP = ".interop-stamp"


class BootstrapError(RuntimeError):
    """The FEDn venv could not be built; the message carries pip's output tail."""


def _base_python() -> str:
    """An interpreter fedn supports (3.9-3.12): $FEDN_SERVER_PYTHON, python3.11, or ours.

    (Not FEDN_PYTHON: that is fedclient's own setting for the package's interpreter.)
    """
    explicit = os.environ.get("FEDN_SERVER_PYTHON")
    if explicit:
        return explicit
    for name in ("python3.11", "python3.12", "python3.10"):
        found = shutil.which(name)
        if found:
            return found
    if sys.version_info < (3, 13):
        return sys.executable
    raise BootstrapError("no Python < 3.13 found for the FEDn venv; set FEDN_SERVER_PYTHON")


def venv_python(path: Path = DEFAULT_VENV) -> Path:
    return path / "bin" / "python"


def requirements(path: Path) -> tuple[str, ...]:
    """What the venv at ``path`` holds: the torch venv has the example's libraries too."""
    return TORCH_REQUIREMENTS if Path(path).resolve() == TORCH_VENV.resolve() else REQUIREMENTS


def _stamp_text(base: str, wanted: tuple[str, ...]) -> str:
    version = subprocess.run(
        [base, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return "\n".join([f"python {version}", *wanted]) + "\n"


def ensure_fedn_venv(path: Path = DEFAULT_VENV) -> Path:
    """Create (once) the FEDn server venv at ``path``; return ``path``.

    A cache hit costs one ``python -c`` call (~30 ms). A miss recreates the venv from
    scratch (seconds with uv, about a minute with pip and a warm cache) so no stale package survives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = _base_python()
    packages = requirements(path)
    wanted = _stamp_text(base, packages)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = path / _STAMP
        if stamp.is_file() and stamp.read_text() == wanted and venv_python(path).exists():
            return path
        started = time.monotonic()
        shutil.rmtree(path, ignore_errors=True)
        pip_only = packages == TORCH_REQUIREMENTS  # only pip takes the CPU torch wheel on disk
        for command in create_commands(base, path, pip_only=pip_only):
            _run(command, "create the venv")
        _run(install_command(path, *packages, pip_only=pip_only), "install " + " ".join(packages))
        stamp.write_text(wanted)
        print(f"[interop] FEDn venv built in {time.monotonic() - started:.0f} s at {path}", file=sys.stderr)
    return path


def _run(cmd: list[str], what: str) -> None:
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    env.pop("PYTHONPATH", None)  # our src must never leak into fedn's interpreter
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise BootstrapError(f"could not {what} (exit {proc.returncode}):\n{tail}")


if __name__ == "__main__":
    print(ensure_fedn_venv(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_VENV))
