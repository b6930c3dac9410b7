"""A Ray actor killed before it closed leaves its scratch dir; the next actor on the machine removes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fedclient.app.simulation.ray_actor import OWNER, SCRATCH_PREFIX, sweep_stale_scratch


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(child.stdout)


def _scratch(root: Path, name: str, owner: int | None) -> Path:
    made = root / f"{SCRATCH_PREFIX}{name}"
    (made / "clients" / "client-0").mkdir(parents=True)
    if owner is not None:
        (made / OWNER).write_text(str(owner))
    return made


def test_only_the_dirs_of_dead_actors_are_removed(tmp_path: Path) -> None:
    dead = _scratch(tmp_path, "run1-dead", _dead_pid())
    alive = _scratch(tmp_path, "run1-alive", os.getpid())
    driver = _scratch(tmp_path, "driverwork", None)  # the driver's work dir: no owner file
    garbled = _scratch(tmp_path, "run2-garbled", None)
    (garbled / OWNER).write_text("not a pid")
    other = tmp_path / "something-else"
    other.mkdir()

    assert sweep_stale_scratch(tmp_path) == [dead]
    assert not dead.exists()
    assert alive.exists() and driver.exists() and garbled.exists() and other.exists()
