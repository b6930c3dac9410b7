"""FEDN_PACKAGE_EXTRACT_DIR end to end inside one process: setting, plan, lock, lifecycle, policy.

The file-system merge itself is tested in test_package_merge; here the pieces around it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fedclient.app.cli import main
from fedclient.app.plan import build_plan, package_extract_dir
from fedclient.app.settings_load import load, load_settings
from fedclient.app.settings_rules import check
from fedclient.app.workdir import extract_dir_lock
from fedclient.domain.errors import ConfigError
from fedclient.domain.extract_dir import (
    RECORD_NAME,
    MergeReport,
    Shipped,
    is_safe_relative,
    overlap,
    read_record,
    shipped_from,
    stale,
    unchanged,
    with_record,
)
from fedclient.domain.lifecycle import Lifecycle
from fedclient.testing.fakes import InMemoryPackageSource, InMemoryUnpacker

from tests.unit import test_package_reuse as package_reuse
from tests.unit.world import MANIFEST

pytestmark = pytest.mark.usefixtures("no_fedn_env", "restore_root_logger")

# ------------------------------------------------------------- the policy --


def test_stale_is_what_only_the_previous_version_shipped() -> None:
    old = shipped_from(["fedn.yaml", "old.py", "lib/a.py", "lib/deep/b.py", "x"])
    new = shipped_from(["fedn.yaml", "lib/a.py", "x/inside.py"])  # x: a file before, a directory now
    assert old.dirs == {"lib", "lib/deep"} and new.dirs == {"lib", "x"}
    removing = stale(old, new)
    assert removing.files == ("lib/deep/b.py", "old.py")
    assert removing.dirs == ("lib/deep",)
    assert stale(Shipped(), new).files == ()  # nothing recorded: nothing removed
    # A directory that becomes a file: everything under it goes, the directory too.
    removing = stale(shipped_from(["utils/a.py"]), shipped_from(["utils"]))
    assert (removing.files, removing.dirs) == (("utils/a.py",), ("utils",))


def test_stale_directories_go_deepest_first() -> None:
    old = shipped_from(["a/b/c/d.py", "a/e.py"])
    assert stale(old, Shipped()).dirs == ("a/b/c", "a/b", "a")


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../b", "", ".", "a//b", "a\\b", "a/\x00", "./a"])
def test_unsafe_record_paths_are_refused(path: str) -> None:
    assert not is_safe_relative(path)


def test_the_record_round_trips_and_keeps_other_extract_dirs() -> None:
    shipped = shipped_from(["fedn.yaml", "lib/a.py"], read_only=True)
    data = with_record(
        {"version": 1, "targets": {"/other": {"files": ["k.py"], "dirs": []}}}, "/site", shipped
    )
    assert read_record(json.loads(json.dumps(data)), "/site") == shipped
    assert read_record(data, "/other").files == {"k.py"}
    assert read_record(data, "/nowhere") == Shipped()
    for broken in (None, [], {"version": 2, "targets": data["targets"]}, {"version": 1, "targets": []}):
        assert read_record(broken, "/site") == Shipped()
    hostile = {"version": 1, "targets": {"/site": {"files": ["../up", "ok.py", 3], "dirs": "lib"}}}
    assert read_record(hostile, "/site") == Shipped(frozenset({"ok.py"}))


def test_stats_are_recorded_checked_and_dropped_for_files_a_new_version_replaces() -> None:
    shipped = Shipped(frozenset({"a.py", "seed.npz"}), stats={"a.py": (1, 2), "seed.npz": (3, -4)})
    data = json.loads(json.dumps(with_record(None, "/site", shipped)))
    assert data["targets"]["/site"]["stats"] == {"a.py": [1, 2], "seed.npz": [3, -4]}
    assert read_record(data, "/site") == shipped
    data["targets"]["/site"]["stats"] = {"a.py": [1, True], "seed.npz": [-1, 0], "other": [1, 1], "x": 3}
    assert read_record(data, "/site").stats == {}  # malformed, negative sizes, paths not recorded
    # While a merge runs the record lists both versions: stats only where the old file stays.
    both = shipped.union(Shipped(frozenset({"a.py", "b.py"})))
    assert both.files == {"a.py", "b.py", "seed.npz"} and both.stats == {"seed.npz": (3, -4)}
    assert unchanged(None, 1, 2) and unchanged((1, 2), 1, 2) and not unchanged((1, 2), 1, 3)


def test_overlap_is_either_way_round() -> None:
    assert overlap(Path("/site"), Path("/site"))
    assert overlap(Path("/site"), Path("/site/.fedclient"))
    assert overlap(Path("/site/work/package"), Path("/site/work"))
    assert not overlap(Path("/site/package"), Path("/site/.fedclient"))
    assert not overlap(Path("/site/pack"), Path("/site/package"))


# ------------------------------------------------------------- the setting --


def test_the_setting_comes_from_fedns_variable_a_flag_or_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    init = tmp_path / "client.yaml"
    init.write_text("api_url: localhost\npackage_extract_dir: from-file\n")
    assert load({}, init).settings.package_extract_dir == Path("from-file")
    monkeypatch.setenv("FEDN_PACKAGE_EXTRACT_DIR", "package")
    loaded = load({}, init)
    assert (
        loaded.settings.package_extract_dir == Path("package")
        and loaded.sources["package_extract_dir"] == "env"
    )
    # Relative to the directory the client starts in, as FEDn's client has it.
    assert package_extract_dir(loaded.settings) == tmp_path / "package"
    assert build_plan(loaded.settings).package_extract_dir == tmp_path / "package"
    assert load({"package_extract_dir": Path("/abs/dir")}, init).settings.package_extract_dir == Path(
        "/abs/dir"
    )


def test_the_flag_is_generated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["config", "show", "--api-url", "localhost", "--package-extract-dir", "pkg"]) == 0
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "package_extract_dir" in ln]
    assert "pkg" in line and "flag" in line


def test_unset_or_empty_is_todays_private_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert build_plan(load_settings({"api_url": "localhost"})).package_extract_dir is None
    monkeypatch.setenv("FEDN_PACKAGE_EXTRACT_DIR", "")  # FEDn's "" is not the start directory itself
    assert load_settings({"api_url": "localhost"}).package_extract_dir is None


def test_nothing_is_unpacked_with_a_local_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fedn.yaml").write_text(json.dumps(MANIFEST))
    monkeypatch.setenv("FEDN_PACKAGE_EXTRACT_DIR", "package")
    loaded = load({"api_url": "localhost", "local_package": Path(".")})
    with caplog.at_level(logging.WARNING, logger="fedclient.settings"):
        check(loaded)
    assert build_plan(loaded.settings).package_extract_dir is None
    assert any(
        "FEDN_PACKAGE_EXTRACT_DIR does nothing with --local-package" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize(("extract", "work"), [(".", ".fedclient"), ("site", "site"), ("w/pkg", "w")])
def test_an_extract_dir_over_the_work_dir_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extract: str,
    work: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--api-url", "localhost", "--package-extract-dir", extract, "--work-dir", work])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert line.startswith("fedclient: error: --package-extract-dir (")
    assert "must not contain one another" in line


# ---------------------------------------------------------------- the lock --


def test_a_second_holder_of_the_extract_dir_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "package"
    refused = pytest.raises(
        ConfigError,
        match=rf"another fedclient \(pid {os.getpid()}\) is already unpacking its package into {target} "
        r"\(--package-extract-dir\); stop it",
    )
    with extract_dir_lock(target, "FEDN_PACKAGE_EXTRACT_DIR"), refused, extract_dir_lock(target):
        pass
    assert target.is_dir() and list(target.iterdir()) == []  # a lock on the directory: no lock file in it
    with extract_dir_lock(target):  # released on exit
        pass
    with extract_dir_lock(None):  # no extract dir: nothing to lock
        pass


def test_the_extract_dir_lock_is_held_by_a_running_client_and_dies_with_it(tmp_path: Path) -> None:
    target = tmp_path / "package"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from fedclient.app.workdir import extract_dir_lock\n"
            "with extract_dir_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"), extract_dir_lock(target):
            pass
    finally:
        holder.kill()
        holder.wait(10)
    with extract_dir_lock(target):
        pass


# ----------------------------------------------------------- the lifecycle --


def package(path: Path, marker: str) -> Path:
    manifest = {"entry_points": {**MANIFEST["entry_points"], "train": {"command": f"python {marker}.py"}}}
    path.write_text(json.dumps({"fedn.yaml": json.dumps(manifest), f"{marker}.py": marker}))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def start(work: Path, target: Path, source: InMemoryPackageSource) -> Lifecycle:
    return await package_reuse.start(work, source, package_extract_dir=target)


async def test_every_start_unpacks_over_the_extract_dir_and_keeps_runtime_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work, target = tmp_path / "work", tmp_path / "package"
    v1 = package(tmp_path / "v1.json", "one")
    source = InMemoryPackageSource(v1, digest(v1))
    with caplog.at_level(logging.INFO, logger="fedclient.lifecycle"):
        first = await start(work, target, source)
    assert first.package_dir == target and (target / "one.py").read_text() == "one"
    assert not (work / "packages").exists()  # not the private directory
    assert (work / RECORD_NAME).is_file()
    assert (
        f"package unpacked into {target} (FEDN_PACKAGE_EXTRACT_DIR): 2 files written, "
        "0 removed from the previous version, 0 run-time files kept"
    ) in caplog.messages
    (target / "state.txt").write_text("round 1\n")  # the package's own run-time file

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fedclient.lifecycle"):
        again = await start(work, target, source)  # unchanged: the kept archive, the same unpack
    assert source.downloads == 1 and again.package_dir == target
    assert any("not downloaded again" in m for m in caplog.messages)
    assert any("1 run-time file kept" in m for m in caplog.messages)
    assert (target / "state.txt").read_text() == "round 1\n"

    v2 = package(tmp_path / "v2.json", "two")
    source.archive, source.server_checksum = v2, digest(v2)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fedclient.lifecycle"):
        third = await start(work, target, source)
    assert source.downloads == 2 and third.package_dir == target
    assert not (target / "one.py").exists() and (target / "two.py").read_text() == "two"
    assert (target / "state.txt").read_text() == "round 1\n"
    assert any("1 removed from the previous version, 1 run-time file kept" in m for m in caplog.messages)


def test_the_python_api_refuses_an_extract_dir_over_its_work_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedclient.network.clients.client import Client

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEDN_PACKAGE_EXTRACT_DIR", ".")  # the default work dir .fedclient is inside
    with pytest.raises(ConfigError) as refused:
        Client({"api_url": "localhost", "name": "a", "client_id": "b"})
    assert str(refused.value) == (
        f"package_extract_dir (FEDN_PACKAGE_EXTRACT_DIR) ({tmp_path}) and the work dir "
        f"({tmp_path / '.fedclient'}) must not contain one another: the package would be unpacked "
        "over the client's own files"
    )
    assert "\n" not in str(refused.value) and not (tmp_path / ".fedclient").exists()
    with pytest.raises(ConfigError, match="must not contain one another"):  # every plan gets the check
        build_plan(load_settings({"api_url": "x", "work_dir": Path("w"), "package_extract_dir": "w/p"}))


async def test_children_a_killed_client_left_are_swept_before_the_package_is_unpacked(tmp_path: Path) -> None:
    """After a SIGKILL, the old entry points may still run in the extract dir: gone before the merge."""
    from fedclient.adapters.trainers import PID_FILE, ChildRegistry, subprocess_trainer_factory

    from tests.unit.world import World

    pid_file = tmp_path / "work" / PID_FILE
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        ChildRegistry(pid_file).record(leftover.pid)  # what the killed client had written
        alive_at_unpack: list[bool] = []

        class Watching(InMemoryUnpacker):
            def unpack_over(self, archive: Path, target: Path, record: Path) -> MergeReport:
                try:
                    leftover.wait(2)
                except subprocess.TimeoutExpired:
                    alive_at_unpack.append(True)
                else:
                    alive_at_unpack.append(False)
                return super().unpack_over(archive, target, record)

        w = World(
            tmp_path,
            package(tmp_path / "v1.json", "one"),
            package_extract_dir=tmp_path / "package",
            unpacker=Watching(),
            trainer_factory=subprocess_trainer_factory(pid_file=pid_file),
        )
        await w.run_until(lambda: w.life.runner is not None)
        assert alive_at_unpack == [False]
        assert json.loads(pid_file.read_text()) == []
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait(10)


def test_an_extract_dir_that_cannot_be_locked_is_used_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """flock on a directory opened read-only fails on some NFS mounts (EBADF): not a reason to stop."""
    import errno
    import fcntl

    def nfs(_fd: int, _operation: int) -> None:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(fcntl, "flock", nfs)
    ran = False
    with caplog.at_level(logging.WARNING, logger="fedclient.workdir"), extract_dir_lock(tmp_path / "pkg"):
        ran = True
    assert ran
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.getMessage() == (
        f"cannot lock the package extract dir {tmp_path / 'pkg'} ({os.strerror(errno.EBADF)}): "
        "a second fedclient using it would not be stopped"
    )
