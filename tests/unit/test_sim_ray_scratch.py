"""A Ray actor killed before it closed leaves its scratch dir; the next actor on the machine removes it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
from fedclient.app.simulation.ray_actor import OWNER, SCRATCH_PREFIX, remove_own_scratch, sweep_stale_scratch


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(child.stdout)


def _scratch(root: Path, name: str, owner: int | None, host: str | None = None) -> Path:
    made = root / f"{SCRATCH_PREFIX}{name}"
    (made / "clients" / "client-0").mkdir(parents=True)
    if owner is not None:
        (made / OWNER).write_text(f"{host or socket.gethostname()} {owner}")
    return made


def test_only_the_dirs_of_dead_actors_are_removed(tmp_path: Path) -> None:
    dead = _scratch(tmp_path, "run1-dead", _dead_pid())
    alive = _scratch(tmp_path, "run1-alive", os.getpid())
    driver = _scratch(tmp_path, "driverwork", None)  # the driver's work dir: no owner file
    garbled = _scratch(tmp_path, "run2-garbled", None)
    (garbled / OWNER).write_text("not a pid")
    elsewhere = _scratch(tmp_path, "run1-other-node", _dead_pid(), host="another-node")  # a shared /tmp
    other = tmp_path / "something-else"
    other.mkdir()

    assert sweep_stale_scratch(tmp_path) == [dead]
    assert not dead.exists()
    assert alive.exists() and driver.exists() and garbled.exists() and other.exists() and elsewhere.exists()


def test_an_actor_removes_its_scratch_with_its_pid_file_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedclient.app.simulation import ray_actor

    scratch = _scratch(tmp_path, "run3-0", os.getpid())
    (scratch / "package").mkdir()
    (scratch / "package" / "callbacks.py").write_text("")
    (scratch / "clients" / "simulated-clients" / "tasks" / "train-1").mkdir(parents=True)
    left_for_last: list[list[str]] = []

    def rmtree(path: Path, ignore_errors: bool = False) -> None:
        left_for_last.append(sorted(os.listdir(path)))  # a kill here leaves a sweepable dir
        shutil.rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(ray_actor, "shutil", types.SimpleNamespace(rmtree=rmtree))
    remove_own_scratch(scratch)
    assert left_for_last == [[OWNER]]
    assert not scratch.exists()
