"""read_only_package as a mount: the entry point cannot write its package directory, even as root.

Root ignores file modes, so the chmod that ``make_read_only`` applies (checked for a normal
user in test_hostile_archives) does not stop it; the entry point's own read-only bind mount
(tied_exec, in a private mount namespace) does. These tests need that privilege: CI runs
them as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fedclient.adapters.trainers import SubprocessTrainer
from fedclient.adapters.trainers.child_process import tied_argv
from fedclient.app.container import build_container
from fedclient.app.settings_load import load_settings
from fedclient.domain.package import Manifest
from fedclient.domain.ports import TrainerFactory

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="a mount namespace needs root on Linux; for other users the chmod protection applies",
)

# Tries to create a file and to change one in its package dir (its cwd); reports the errno
# names it got (or "ok") in its output model, which lives outside the package.
WRITER = """
    import errno, json, sys

    def attempt(path, mode):
        try:
            with open(path, mode) as f:
                f.write("written by the entry point")
        except OSError as exc:
            return errno.errorcode[exc.errno]
        return "ok"

    result = {"create": attempt("new.txt", "w"), "modify": attempt("train.py", "a")}
    json.dump(result, open(sys.argv[2], "w"))
    json.dump({"num_examples": 1}, open(sys.argv[2] + "-metadata", "w"))
"""


def _package(tmp_path: Path) -> tuple[Path, Manifest]:
    package = tmp_path / "package dir"
    package.mkdir()
    (package / "train.py").write_text(textwrap.dedent(WRITER))
    return package, Manifest(entry_points={"train": ("python", "train.py")})


async def _train(
    tmp_path: Path, read_only: bool, factory: TrainerFactory | None = None
) -> tuple[Path, dict[str, str]]:
    package, manifest = _package(tmp_path)
    scratch = tmp_path / "tasks"
    scratch.mkdir()
    (scratch / "in.npz").write_bytes(b"seed")
    if factory is not None:
        trainer = factory(package, manifest)
    else:
        trainer = SubprocessTrainer(package, manifest, timeout=30, read_only=read_only)
    metadata = await trainer.train(scratch / "in.npz", scratch / "out.npz", {})
    assert metadata["num_examples"] == 1  # the task succeeded
    return package, json.loads((scratch / "out.npz").read_text())


async def test_the_entry_point_cannot_write_its_package_but_writes_its_model(tmp_path: Path) -> None:
    package, result = await _train(tmp_path, read_only=True)
    assert result == {"create": "EROFS", "modify": "EROFS"}
    assert not (package / "new.txt").exists()
    assert (package / "train.py").read_text() == textwrap.dedent(WRITER)
    (package / "client side.txt").write_text("x")  # the mount stayed in the child's namespace


async def test_without_the_policy_the_same_writes_succeed(tmp_path: Path) -> None:
    package, result = await _train(tmp_path, read_only=False)
    assert result == {"create": "ok", "modify": "ok"}
    assert (package / "new.txt").read_text() == "written by the entry point"


async def test_the_site_policy_setting_reaches_the_trainer(tmp_path: Path) -> None:
    settings = load_settings(
        {"api_url": "localhost", "work_dir": tmp_path / "work", "token": "t", "read_only_package": True}
    )
    factory = build_container(settings).trainer_factory()
    _, result = await _train(tmp_path, read_only=True, factory=factory)
    assert result == {"create": "EROFS", "modify": "EROFS"}


async def test_a_local_package_directory_is_left_writable(tmp_path: Path) -> None:
    settings = load_settings(
        {"work_dir": tmp_path / "work", "local_package": tmp_path, "read_only_package": True}
    )
    factory = build_container(settings).trainer_factory()
    _, result = await _train(tmp_path, read_only=True, factory=factory)
    assert result == {"create": "ok", "modify": "ok"}


def test_a_mount_that_fails_stops_the_child_with_one_clear_line(tmp_path: Path) -> None:
    argv = tied_argv(["true"], os.getpid(), read_only=tmp_path / "missing")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 127
    assert done.stderr.strip().splitlines() == [
        f"tied_exec: cannot make the package directory read-only: bind-mount {tmp_path / 'missing'}: "
        "No such file or directory"
    ]


@pytest.mark.skipif(
    shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop CAP_SYS_ADMIN"
)
def test_without_the_privilege_to_mount_the_child_runs_on_unprotected_by_the_mount(tmp_path: Path) -> None:
    # setpriv drops CAP_SYS_ADMIN and execs in place (still our child): unshare gets EPERM.
    script = f"open({str(tmp_path / 'new.txt')!r}, 'w').write('x')"
    argv = tied_argv([sys.executable, "-c", script], os.getpid(), read_only=tmp_path)
    drop = ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--"]
    done = subprocess.run(drop + argv, capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert (tmp_path / "new.txt").read_text() == "x"  # here only file modes would have protected it


# Writes beside fedn.yaml's directory, into the extract dir that holds it, and into its own cwd.
EXTRACT_WRITER = """
    import errno, json, sys

    def attempt(path):
        try:
            with open(path, "w") as f:
                f.write("written by the entry point")
        except OSError as exc:
            return errno.errorcode[exc.errno]
        return "ok"

    result = {"cwd": attempt("new.txt"), "extract dir": attempt("../beside.txt")}
    json.dump(result, open(sys.argv[2], "w"))
    json.dump({"num_examples": 1}, open(sys.argv[2] + "-metadata", "w"))
"""


@pytest.mark.parametrize("read_only", [True, False])
async def test_with_an_extract_dir_the_mount_covers_all_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool
) -> None:
    """FEDN_PACKAGE_EXTRACT_DIR with fedn.yaml one level down: the whole extract dir is read-only."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {
            "api_url": "localhost",
            "work_dir": tmp_path / "work",
            "token": "t",
            "read_only_package": read_only,
            "package_extract_dir": Path("extract"),
        }
    )
    package = tmp_path / "extract" / "client"
    package.mkdir(parents=True)
    (package / "train.py").write_text(textwrap.dedent(EXTRACT_WRITER))
    manifest = Manifest(entry_points={"train": ("python", "train.py")})
    trainer = build_container(settings).trainer_factory()(package, manifest)
    scratch = tmp_path / "tasks"
    scratch.mkdir()
    (scratch / "in.npz").write_bytes(b"seed")
    await trainer.train(scratch / "in.npz", scratch / "out.npz", {})
    result = json.loads((scratch / "out.npz").read_text())
    if read_only:
        assert result == {"cwd": "EROFS", "extract dir": "EROFS"}
        assert not (tmp_path / "extract" / "beside.txt").exists()
    else:
        assert result == {"cwd": "ok", "extract dir": "ok"}
        assert (tmp_path / "extract" / "beside.txt").is_file()
