from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.federation import Federation

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"


def fedclient_exe() -> str:
    exe = Path(sys.executable).parent / "fedclient"
    assert exe.exists(), "the fedclient console script is not installed in this venv"
    return str(exe)


def run_cli(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [fedclient_exe(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )


@pytest.fixture
def digits() -> Path:
    return DIGITS


@pytest.fixture
async def federation(
    tmp_path: Path, digits: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Federation]:
    """A sandbox federation serving examples/digits for one client; an indirect param is its token."""
    token = getattr(request, "param", None)
    fed = Federation(digits, tmp_path / "server", expected_clients=1, token=token, round_timeout=60)
    await fed.start()
    try:
        yield fed
    finally:
        await fed.stop()
