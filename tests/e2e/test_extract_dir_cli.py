"""`FEDN_PACKAGE_EXTRACT_DIR=package fedclient run`: FEDn's layout, as its own examples expect it.

The package is unpacked into ``<start dir>/package`` and runs there (so ``../data`` is the
site's data beside it), a file it writes beside itself survives a restart of the client,
and a second client on the same extract dir is refused with one line.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.federation import Federation

from tests.e2e.conftest import ROOT
from tests.e2e.test_run_cli import spawn, stop

# The tiny example's training, plus what FEDn's examples do: read the site's data through
# a path relative to the package dir, and keep state beside the script across runs.
TRAIN = """
import os
import sys
from pathlib import Path

import tiny

here = Path(__file__).resolve().parent
data = Path("../data/marker.txt").read_text().strip()
with open(here / "state.txt", "a") as state:
    state.write(f"{os.getcwd()} {data}\\n")
in_model, out_model = sys.argv[1], sys.argv[2]
Path(out_model).write_bytes(tiny.to_bytes(tiny.step(tiny.load(in_model))))
tiny.write_json(tiny.metadata(), out_model + "-metadata")
"""


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    package = tmp_path / "tiny"
    shutil.copytree(ROOT / "examples" / "tiny", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "train.py").write_text(TRAIN)
    fed = Federation(package, tmp_path / "server", expected_clients=1, round_timeout=60)
    await fed.start()
    try:
        yield fed
    finally:
        await fed.stop()


def unpacked(log: str, target: Path) -> tuple[int, int, int]:
    """(written, removed, kept) from the client's one line about the unpack."""
    line = re.search(
        rf"package unpacked into {re.escape(str(target))} \(FEDN_PACKAGE_EXTRACT_DIR\): (\d+) files? "
        r"written, (\d+) removed from the previous version, (\d+) run-time files? kept",
        log,
    )
    assert line is not None, log[-3000:]
    written, removed, kept = (int(n) for n in line.groups())
    return written, removed, kept


async def test_the_package_runs_from_the_extract_dir_and_its_files_survive_a_restart(
    tmp_path: Path, federation: Federation
) -> None:
    site = tmp_path / "site"
    (site / "data").mkdir(parents=True)
    (site / "data" / "marker.txt").write_text("site data\n")
    target = site / "package"
    args = ("run", "--api-url", federation.api_url)
    env = {"FEDN_PACKAGE_EXTRACT_DIR": "package"}
    shipped = sorted(p.name for p in (tmp_path / "tiny").iterdir())

    first = await spawn(*args, cwd=site, env=env)
    try:
        await federation.wait_for_clients(timeout=60)
        # A second client in the same start dir (its own work dir) would unpack over the first.
        second = await spawn(*args, "--work-dir", str(tmp_path / "other"), cwd=site, env=env)
        code = await second.wait(60)
        assert code == 2, second.tail()
        assert second.stderr.strip().splitlines() == [
            f"fedclient: error: another fedclient (pid {first.pid}) is already unpacking its package into "
            f"{target} (FEDN_PACKAGE_EXTRACT_DIR); stop it or give this one its own extract dir"
        ]
        [result] = await federation.run(1)
        assert result.updates == 1
    finally:
        log = await stop(first)
    assert unpacked(log, target) == (len(shipped), 0, 0)
    assert f"(in {target})" in log  # the entry point's cwd: the directory holding fedn.yaml
    assert not (site / ".fedclient" / "packages").exists()  # not the private per-version directory
    assert (target / "state.txt").read_text() == f"{target} site data\n"

    again = await spawn(*args, cwd=site, env=env)
    try:
        await federation.wait_for_clients(timeout=60)
        result = (await federation.run(1))[-1]  # run() returns every round so far
        assert result.updates == 1
    finally:
        log = await stop(again)
    assert "not downloaded again" in log  # the kept archive, unpacked the same way
    written, removed, kept = unpacked(log, target)
    assert (written, removed) == (len(shipped), 0) and kept >= 1  # state.txt (and Python's __pycache__)
    assert (target / "state.txt").read_text() == f"{target} site data\n" * 2
    assert sorted(p.name for p in site.iterdir()) == [".fedclient", "data", "package"]  # no staging left
