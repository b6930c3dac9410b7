"""`fedclient sandbox` stops on SIGINT/SIGTERM within 10 s at any point, and at once on a second signal."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.child import Child
from tests.e2e.conftest import ROOT, fedclient_exe

TINY = ROOT / "examples" / "tiny"

# A training entry point that stays busy (a child process of the client), recording its pid.
SLOW_TRAIN = """
import os
import sys
import time
from pathlib import Path

Path("{marker}").write_text(str(os.getpid()))
time.sleep(120)
"""


async def _mid_round(tmp_path: Path) -> tuple[Child, Path, Path]:
    package = tmp_path / "slow"
    shutil.copytree(TINY, package, ignore=shutil.ignore_patterns("__pycache__"))
    marker = tmp_path / "training.pid"
    (package / "train.py").write_text(SLOW_TRAIN.format(marker=marker))
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    argv = ("sandbox", "--clients", "2", "--rounds", "2", "--package", package)
    child = await Child.start(fedclient_exe(), *argv, cwd=tmp_path, env=env)
    deadline = time.monotonic() + 90
    while not marker.exists() or not marker.read_text():  # training is under way
        assert time.monotonic() < deadline and child.returncode is None, child.tail()
        await asyncio.sleep(0.1)
    return child, temp, marker


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
async def test_a_signal_mid_round_stops_the_sandbox_within_10_s(tmp_path: Path, sig: signal.Signals) -> None:
    child, temp, marker = await _mid_round(tmp_path)
    try:
        signalled = time.monotonic()
        code = await child.stop(sig, 30)
        took = time.monotonic() - signalled
    finally:
        await child.kill()
    assert code == 0, child.tail()
    assert took < 10, f"the sandbox took {took:.1f} s to stop\n{child.tail()}"
    assert f"stopping on {sig.name}" in child.stderr
    assert "Traceback" not in child.stderr
    assert list(temp.iterdir()) == [], "the temporary work dir is removed"
    assert _gone(int(marker.read_text())), "the training process is left running"
    print(f"sandbox stopped {took:.1f} s after {sig.name}")


async def test_a_second_signal_ends_the_sandbox_at_once(tmp_path: Path) -> None:
    child, temp, marker = await _mid_round(tmp_path)
    try:
        child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while "stopping on SIGTERM" not in child.stderr:
            assert time.monotonic() < deadline, child.tail()
            await asyncio.sleep(0.05)
        signalled = time.monotonic()
        code = await child.stop(signal.SIGTERM, 10)
        took = time.monotonic() - signalled
    finally:
        await child.kill()
    assert code == 128 + signal.SIGTERM, child.tail()
    assert took < 3, f"{took:.1f} s"
    assert "SIGTERM again: stopping now" in child.stderr
    assert list(temp.iterdir()) == [], "the temporary work dir is removed"
    assert _gone(int(marker.read_text())), "the training process is left running"
