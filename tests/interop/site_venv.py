"""The venv fedclient runs from in the interop tier: fedclient alone, as a site installs it.

A site does ``pip install fedclient`` into a venv of its own and keeps its ML libraries
(numpy, and ``fedn`` for its helpers) elsewhere, on PATH or in the package's python_env.
So the interop tier runs ``fedclient`` from ``.site-venv``: the project installed with
no extras, hence no numpy, no scikit-learn and no fedn. A package can only train if
fedclient runs it in the environment FEDn would give it. The project's dev venv holds
numpy, so a green run from there would prove nothing.

The install is editable (the venv always runs the current source) and cached: a stamp
records the interpreter, pyproject.toml and the extras, and only a change to any of them
reinstalls. A file lock keeps concurrent bootstraps from racing. ``make site-venv`` builds it.

A site whose policy has a privacy section installs ``fedclient[privacy]`` (numpy and
dp-accounting, which the privacy guard itself needs). That is a second venv,
``.site-privacy-venv``, built the same cached way, so ``.site-venv`` keeps its "no numpy"
guarantee for every other interop test; scikit-learn and fedn are absent from both.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

try:
    from .installer import create_commands, install_command
except ImportError:  # run as a script (`make site-venv`)
    from installer import create_commands, install_command  # type: ignore[import-not-found,no-redef]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SITE_VENV = REPO / ".site-venv"
PRIVACY_SITE_VENV = REPO / ".site-privacy-venv"
PRIVACY_EXTRAS = ("privacy",)
_STAMP = ".site-stamp"
# What must NOT be importable from the site venv (the package's libraries).
ABSENT = ("numpy", "sklearn", "fedn")
# What each extra brings (and so may be, or must be, importable).
EXTRA_MODULES = {"privacy": ("numpy", "dp_accounting")}


class SiteVenvError(RuntimeError):
    """The site venv could not be built, or it holds libraries it must not have."""


def site_bin(path: Path = DEFAULT_SITE_VENV) -> Path:
    return path / "bin"


def _stamp_text(extras: tuple[str, ...] = ()) -> str:
    pyproject = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    text = f"python {sys.version.split()[0]} {sys.executable}\npyproject {pyproject}\neditable {REPO}\n"
    return text + (f"extras {','.join(extras)}\n" if extras else "")


def ensure_site_venv(path: Path = DEFAULT_SITE_VENV, extras: tuple[str, ...] = ()) -> Path:
    """Create (once) the site venv at ``path``, fedclient with ``extras``; return ``path``.

    A cache hit costs a file read.
    """
    path = Path(path)
    wanted = _stamp_text(extras)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = path / _STAMP
        if stamp.is_file() and stamp.read_text() == wanted and (site_bin(path) / "fedclient").exists():
            return path
        started = time.monotonic()
        shutil.rmtree(path, ignore_errors=True)
        for command in create_commands(sys.executable, path):
            _run(command, "create the site venv")
        target = f"{REPO}[{','.join(extras)}]" if extras else str(REPO)
        what = f"pip install fedclient[{','.join(extras)}]" if extras else "pip install fedclient (no extras)"
        _run(install_command(path, "-e", target), what)
        check_site_venv(path, extras)
        stamp.write_text(wanted)
        print(f"[interop] site venv built in {time.monotonic() - started:.0f} s at {path}", file=sys.stderr)
    return path


def check_site_venv(path: Path = DEFAULT_SITE_VENV, extras: tuple[str, ...] = ()) -> None:
    """Raise unless fedclient and its ``extras`` import and none of the package's other libraries do."""
    brought = {m for extra in extras for m in EXTRA_MODULES[extra]}
    absent = tuple(m for m in ABSENT if m not in brought)
    present = tuple(sorted(brought))
    probe = (
        "import importlib.util, fedclient; "
        f"print(','.join(m for m in {absent!r} if importlib.util.find_spec(m))); "
        f"print(','.join(m for m in {present!r} if not importlib.util.find_spec(m)))"
    )
    proc = subprocess.run(
        [str(site_bin(path) / "python"), "-c", probe], capture_output=True, text=True, env=_env(), check=False
    )
    if proc.returncode != 0:
        raise SiteVenvError(f"fedclient does not import in {path}:\n{proc.stderr[-2000:]}")
    unwanted, missing = [*proc.stdout.splitlines(), "", ""][:2]
    if unwanted.strip():
        raise SiteVenvError(f"the site venv {path} must not hold {unwanted.strip()}")
    if missing.strip():
        raise SiteVenvError(f"the site venv {path} lacks {missing.strip()} of its extras {extras}")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_NO_INPUT"] = "1"
    return env


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=False)
    if proc.returncode != 0:
        raise SiteVenvError(
            f"could not {what} (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--privacy"]:
        print(ensure_site_venv(PRIVACY_SITE_VENV, PRIVACY_EXTRAS))
    else:
        print(ensure_site_venv(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SITE_VENV))
