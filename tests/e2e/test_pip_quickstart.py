"""The Quickstart as a pip user meets it: build the wheel, install it with `[sandbox]` alone into a
fresh venv, and run `fedclient sandbox` with no arguments from an empty directory.

Nothing from this checkout is on that venv's path: the demo package, its dependencies
and the command all come from the wheel and its extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT


def _run(*argv: str | Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def test_a_pip_user_reaches_a_trained_round_in_two_commands(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT, cwd=tmp_path, timeout=300
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = wheels.glob("fedclient-*.whl")
    venv = tmp_path / "user-venv"
    made = _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, timeout=120)
    assert made.returncode == 0, made.stderr
    # command 1 of the Quickstart (`pip install`): with uv when this venv has it, which installs the
    # same wheel and extra from the same index in seconds rather than minutes (about 10 s vs 150 s here)
    uv = Path(sys.executable).parent / "uv"
    installer = (
        [uv, "pip", "install", "-q", "--python", venv / "bin" / "python"]
        if uv.exists()
        else [venv / "bin" / "pip", "install", "-q"]
    )
    installed = _run(*installer, f"{wheel}[sandbox]", cwd=tmp_path, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    # command 2, from a directory that holds nothing
    sandbox = _run(venv / "bin" / "fedclient", "sandbox", cwd=empty, timeout=600)
    assert sandbox.returncode == 0, sandbox.stderr[-3000:]
    lines = sandbox.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["round", "global"]
    assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "3"]
    assert lines[4].startswith("summary: 3 rounds with 2 clients in ")
    assert any(line.strip().startswith("test_accuracy: ") for line in lines), sandbox.stdout
    assert "Traceback" not in sandbox.stderr
    assert list(empty.iterdir()) == [], "the sandbox leaves nothing in the user's directory"
