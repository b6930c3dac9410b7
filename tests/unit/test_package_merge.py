"""FEDN_PACKAGE_EXTRACT_DIR: a package unpacked over the site's directory, as FEDn's client does, but safely.

Every case unpacks real archives with the real unpacker into ``<tmp>/site/package`` and
looks at the file system: the package's files replace what is there, what only the
previous version shipped is removed, what the package wrote at run time stays, a refused
archive changes nothing, and no symlink in the target is ever followed.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import stat
import tarfile
from pathlib import Path

import pytest
from fedclient.adapters import package_merge
from fedclient.adapters.package_archive import TarPackageUnpacker
from fedclient.domain.errors import PackageError
from fedclient.domain.extract_dir import RECORD_NAME, MergeReport

from tests.unit.test_hostile_archives import CASES

FEDN_YAML = b"entry_points:\n  train:\n    command: python train.py\n"


def tgz(path: Path, files: dict[str, bytes], executable: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name in executable else 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


class Site:
    """A client's start directory: the extract dir ``package`` and a work dir beside it."""

    def __init__(self, root: Path, read_only: bool = False) -> None:
        self.root = root
        self.target = root / "site" / "package"
        self.record = root / "site" / ".fedclient" / RECORD_NAME
        self.unpacker = TarPackageUnpacker(read_only=read_only)
        self.versions = 0

    def unpack(self, files: dict[str, bytes], **kw: tuple[str, ...]) -> MergeReport:
        self.versions += 1
        archive = tgz(self.root / f"v{self.versions}.tgz", files, **kw)
        return self.unpacker.unpack_over(archive, self.target, self.record)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every entry under ``root`` (links not followed): its mode and its bytes or link text."""
    seen: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                content = "-> " + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = path.read_bytes().hex()
            else:
                content = ""
            seen[str(path.relative_to(root))] = (st.st_mode, content)
    return seen


def test_runtime_files_are_kept_stale_shipped_files_removed(tmp_path: Path) -> None:
    site = Site(tmp_path)
    first = site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v1", "old.py": b"old", "lib/gone.py": b"g"})
    assert first.package_dir == site.target and (first.written, first.removed, first.kept) == (4, 0, 0)
    # What the package's code writes at run time: a client-side model, prepared data, an env.
    (site.target / "local_models").mkdir()
    (site.target / "local_models" / "client.pth").write_bytes(b"weights")
    (site.target / "data" / "clients" / "1").mkdir(parents=True)
    (site.target / "data" / "clients" / "1" / "diabetes.pt").write_bytes(b"data")
    (site.target / "lib" / "cache.bin").write_bytes(b"c")  # run-time file inside a shipped directory

    second = site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v2", "new.py": b"new"})

    assert (second.written, second.removed, second.kept) == (3, 2, 3)
    assert second.describe() == "3 files written, 2 removed from the previous version, 3 run-time files kept"
    assert (site.target / "train.py").read_bytes() == b"v2"
    assert (site.target / "new.py").read_bytes() == b"new"
    assert not (site.target / "old.py").exists() and not (site.target / "lib" / "gone.py").exists()
    assert (site.target / "local_models" / "client.pth").read_bytes() == b"weights"
    assert (site.target / "data" / "clients" / "1" / "diabetes.pt").read_bytes() == b"data"
    assert (site.target / "lib" / "cache.bin").read_bytes() == b"c"  # its directory stays for it
    record = json.loads(site.record.read_text())
    assert record["targets"][str(site.target.resolve())]["files"] == ["fedn.yaml", "new.py", "train.py"]
    assert not list(site.target.parent.glob(".package*")), "the staging directory was left behind"


def test_a_shipped_directory_the_new_version_drops_is_removed_when_empty(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "a/b/c.py": b"c", "d/e.py": b"e"})
    (site.target / "d" / "mine.txt").write_text("run-time")
    site.unpack({"fedn.yaml": FEDN_YAML})
    assert not (site.target / "a").exists()
    assert sorted(p.name for p in (site.target / "d").iterdir()) == ["mine.txt"]


def test_a_new_fedn_yaml_replaces_the_old_and_the_root_comes_from_the_package(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"client/fedn.yaml": FEDN_YAML, "client/train.py": b"x"})
    # A run-time copy of a manifest that sorts first must not be taken for the package's.
    (site.target / "aaa").mkdir()
    (site.target / "aaa" / "fedn.yaml").write_bytes(b"entry_points: {}\n")
    new_yaml = b"entry_points:\n  train:\n    command: python train2.py\n"
    report = site.unpack({"client/fedn.yaml": new_yaml, "client/train2.py": b"y"})
    assert report.package_dir == site.target / "client"
    assert (site.target / "client" / "fedn.yaml").read_bytes() == new_yaml
    assert site.unpacker.load_manifest(report.package_dir).argv("train") == ("python", "train2.py")
    assert not (site.target / "client" / "train.py").exists()


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_hostile_archive_leaves_the_target_byte_for_byte_untouched(tmp_path: Path, kind: str) -> None:
    build, message, limits = CASES[kind]
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"good"})
    (site.target / "local_models").mkdir()
    (site.target / "local_models" / "m.pth").write_bytes(b"w")
    before, record_before = snapshot(site.root / "site"), site.record.read_bytes()
    unpacker = TarPackageUnpacker(limits) if limits else TarPackageUnpacker()

    with pytest.raises(PackageError) as refused:
        unpacker.unpack_over(build(tmp_path / "hostile.tgz"), site.target, site.record)

    assert message in str(refused.value)
    assert snapshot(site.root / "site") == before  # target, record and the start directory as they were
    assert site.record.read_bytes() == record_before


def test_an_archive_without_fedn_yaml_changes_nothing(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"good"})
    before = snapshot(site.root / "site")
    with pytest.raises(PackageError, match=r"no fedn\.yaml"):
        site.unpack({"train.py": b"other"})
    assert snapshot(site.root / "site") == before


def test_a_directory_where_the_package_has_a_file_is_refused_before_any_change(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v1"})
    (site.target / "results").mkdir()
    (site.target / "results" / "r.txt").write_text("run-time")
    before = snapshot(site.root / "site")
    with pytest.raises(PackageError, match="results is a directory there and a file in the package"):
        site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v2", "results": b"file"})
    assert snapshot(site.root / "site") == before


def test_a_shipped_directory_that_becomes_a_file_is_replaced(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "utils/a.py": b"a", "utils/deep/b.py": b"b"})
    report = site.unpack({"fedn.yaml": FEDN_YAML, "utils": b"now a file"})
    assert (site.target / "utils").read_bytes() == b"now a file"
    assert (report.written, report.removed, report.kept) == (2, 2, 0)


def test_planted_symlinks_are_replaced_or_removed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (outside / "old.py").write_bytes(b"not the package's")
    (outside / "lib").mkdir()
    site = Site(tmp_path)
    site.unpack(
        {"fedn.yaml": FEDN_YAML, "train.py": b"v1", "stale.py": b"s", "sub/old.py": b"o", "lib": b"l"}
    )
    # The package's code (same user) plants links where the next version writes and removes.
    (site.target / "train.py").unlink()
    (site.target / "train.py").symlink_to(outside / "secret.txt")  # a shipped file's name
    (site.target / "lib").unlink()
    (site.target / "lib").symlink_to(outside / "lib")  # a shipped file's name, a directory in v2
    (site.target / "stale.py").unlink()
    (site.target / "stale.py").symlink_to(outside / "secret.txt")  # a stale file's name
    (site.target / "sub" / "old.py").unlink()
    (site.target / "sub").rmdir()
    (site.target / "sub").symlink_to(outside)  # the parent of a stale file
    (site.target / "runtime-link").symlink_to(outside / "secret.txt")  # a run-time link
    outside_before = snapshot(outside)

    report = site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v2", "lib/x.py": b"x"})

    assert snapshot(outside) == outside_before  # nothing outside was written, removed or chmodded
    assert (site.target / "train.py").read_bytes() == b"v2" and not (site.target / "train.py").is_symlink()
    lib = site.target / "lib"
    assert lib.is_dir() and not lib.is_symlink() and (lib / "x.py").read_bytes() == b"x"
    assert not (site.target / "stale.py").is_symlink() and not (site.target / "stale.py").exists()
    assert (site.target / "sub").is_symlink()  # a link in the way of a stale path is left alone, unfollowed
    assert (site.target / "runtime-link").is_symlink()
    assert report.kept == 2  # the two links nobody shipped


def test_read_only_policy_in_extract_mode(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"x")
    outside.chmod(0o644)
    site = Site(tmp_path, read_only=True)
    site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v1", "run.sh": b"#!/bin/sh\n", "lib/a.py": b"a"},
                executable=("run.sh",))  # fmt: skip
    target = site.target
    assert stat.S_IMODE(target.stat().st_mode) == 0o500
    assert stat.S_IMODE((target / "lib").stat().st_mode) == 0o500
    assert stat.S_IMODE((target / "train.py").stat().st_mode) == 0o400
    assert stat.S_IMODE((target / "run.sh").stat().st_mode) == 0o500
    if os.geteuid() != 0:  # root ignores modes; the read-only mount covers it (test_read_only_view)
        with pytest.raises(PermissionError):
            (target / "new.txt").write_text("x")

    # Files from before the policy (a model the package kept), a link out and a hard link.
    target.chmod(0o700)
    (target / "local_models").mkdir(0o755)
    (target / "local_models" / "m.pth").write_bytes(b"w")
    (target / "local_models" / "m.pth").chmod(0o644)
    (target / "link").symlink_to(outside)
    os.link(outside, target / "hardlink")
    target.chmod(0o500)

    report = site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v2"})  # a read-only tree merges cleanly

    assert report.removed == 2 and report.kept == 3  # run.sh and lib/a.py; the model and both links
    assert (target / "train.py").read_bytes() == b"v2" and not (target / "lib").exists()
    assert stat.S_IMODE((target / "local_models" / "m.pth").stat().st_mode) == 0o644  # run-time: as it was
    assert stat.S_IMODE((target / "local_models").stat().st_mode) == 0o755
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # neither the link nor the hard link was chmodded

    # The site turns the policy off: the package can write its directory again.
    writable = Site(tmp_path)
    writable.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v3"})
    assert stat.S_IMODE(target.stat().st_mode) & 0o700 == 0o700
    assert stat.S_IMODE((target / "local_models").stat().st_mode) & 0o700 == 0o700
    assert stat.S_IMODE((target / "local_models" / "m.pth").stat().st_mode) & 0o200
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
    (target / "local_models" / "m.pth").write_bytes(b"trained again")


def test_a_merge_cut_short_is_cleaned_up_by_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "a.py": b"a"})
    real = package_merge._place_file
    placed: list[str] = []

    def crash_after_two(src: int, dst: int, name: str) -> None:
        if len(placed) == 2:
            raise OSError(errno.EIO, "the disk went away")
        placed.append(name)
        real(src, dst, name)

    monkeypatch.setattr(package_merge, "_place_file", crash_after_two)
    with pytest.raises(OSError, match="disk went away"):
        site.unpack({"fedn.yaml": FEDN_YAML, "b1.py": b"b", "b2.py": b"b", "b3.py": b"b"})
    monkeypatch.setattr(package_merge, "_place_file", real)
    assert (site.target / "b1.py").exists()  # half of version 2 is in place

    report = site.unpack({"fedn.yaml": FEDN_YAML, "c.py": b"c"})

    assert sorted(p.name for p in site.target.iterdir()) == ["c.py", "fedn.yaml"]
    assert report.kept == 0


def test_a_record_naming_paths_outside_the_target_is_not_obeyed(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML})
    victim = site.root / "site" / "victim.txt"
    victim.write_text("keep me")
    key = str(site.target.resolve())
    site.record.write_text(
        json.dumps(
            {"version": 1, "targets": {key: {"files": ["../victim.txt", str(victim)], "dirs": [".."]}}}
        )
    )
    site.unpack({"fedn.yaml": FEDN_YAML})
    assert victim.read_text() == "keep me"


def test_an_unreadable_record_keeps_everything(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "old.py": b"o"})
    site.record.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="fedclient.package"):
        report = site.unpack({"fedn.yaml": FEDN_YAML})
    assert (site.target / "old.py").exists() and report.kept == 1
    assert any("kept as run-time files" in r.getMessage() for r in caplog.records)


def test_another_file_system_is_copied_then_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The target (or a directory in it) may be a mount of its own: rename cannot cross it."""
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v1"})
    real = os.replace

    def no_crossing(
        src: str, dst: str, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None
    ) -> None:
        if src_dir_fd is not None and dst_dir_fd is not None and src_dir_fd != dst_dir_fd:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(package_merge.os, "replace", no_crossing)
    site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v2", "run.sh": b"#!"}, executable=("run.sh",))
    assert (site.target / "train.py").read_bytes() == b"v2"
    assert (site.target / "run.sh").stat().st_mode & 0o100
    assert not [p for p in site.target.iterdir() if p.name.startswith(".fedclient-")]


def test_staging_falls_back_to_the_work_dir_when_the_parent_is_not_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedclient.adapters import package_archive

    site = Site(tmp_path)
    real = package_archive._fresh_dir
    used: list[Path] = []

    def parent_read_only(path: Path) -> Path:
        if path.parent == site.target.parent:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        used.append(path)
        return real(path)

    monkeypatch.setattr(package_archive, "_fresh_dir", parent_read_only)
    report = site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"x"})
    assert (report.package_dir / "train.py").read_bytes() == b"x"
    assert used == [site.record.parent / ".package.fedclient-staging"] and not used[0].exists()


@pytest.mark.parametrize("kind", ["file", "link"])
def test_a_runtime_file_or_link_where_the_package_has_a_directory_is_refused_before_any_change(
    tmp_path: Path, kind: str
) -> None:
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "x.csv").write_text("site data")
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v1"})
    if kind == "file":  # the package's code wrote it at run time
        (site.target / "results").write_text("round 1")
    else:  # the site points its data into the package directory
        (site.target / "results").symlink_to(datasets)
    before, outside = snapshot(site.root / "site"), snapshot(datasets)
    with pytest.raises(PackageError) as refused:
        site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v2", "results/deep/readme": b"new"})
    assert str(refused.value) == (
        f"cannot unpack the package into {site.target}: results is a file or link there and a directory "
        "in the package; move it away"
    )
    assert snapshot(site.root / "site") == before and snapshot(datasets) == outside


def test_a_shipped_file_that_becomes_a_directory_is_replaced(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "utils": b"a file", "lib": b"another"})
    (site.target / "lib").unlink()
    (site.target / "lib").symlink_to(tmp_path)  # the package's code replaced its own file with a link
    site.unpack({"fedn.yaml": FEDN_YAML, "utils/a.py": b"a", "lib/b.py": b"b"})
    assert (site.target / "utils" / "a.py").read_bytes() == b"a"
    assert not (site.target / "lib").is_symlink() and (site.target / "lib" / "b.py").read_bytes() == b"b"
    assert not (tmp_path / "b.py").exists()


def pycache(directory: Path, *modules: str) -> None:
    """What importing the package's modules leaves beside them."""
    (directory / "__pycache__").mkdir()
    for module in modules:
        (directory / "__pycache__" / f"{module}.cpython-311.pyc").write_bytes(b"\x00pyc")


def test_pycache_in_a_shipped_directory_does_not_keep_it_from_going(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "utils/a.py": b"a", "utils/deep/b.py": b"b", "old/c.py": b"c"})
    pycache(site.target / "utils", "a")  # the code ran: Python cached what it imported
    pycache(site.target / "utils" / "deep", "b")
    pycache(site.target / "old", "c")
    report = site.unpack({"fedn.yaml": FEDN_YAML, "utils": b"now a file"})
    assert (site.target / "utils").read_bytes() == b"now a file"
    assert not (site.target / "old").exists()  # the stale directory held only its cache
    assert (report.removed, report.kept) == (3, 0)


def test_a_pycache_holding_anything_else_is_not_disposable(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "utils/a.py": b"a", "old/c.py": b"c"})
    for name in ("utils", "old"):
        pycache(site.target / name, "a")
        (site.target / name / "__pycache__" / "notes.txt").write_text("mine")
    with pytest.raises(PackageError, match="utils is a directory there and a file in the package"):
        site.unpack({"fedn.yaml": FEDN_YAML, "utils": b"now a file"})
    site.unpack({"fedn.yaml": FEDN_YAML, "utils/a.py": b"a"})
    assert (site.target / "old" / "__pycache__" / "notes.txt").read_text() == "mine"


def test_a_stale_shipped_file_the_package_changed_is_kept(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "seed.npz": b"seed", "old.py": b"o", "models/m.bin": b"m"})
    key = str(site.target.resolve())
    stats = json.loads(site.record.read_text())["targets"][key]["stats"]
    seed = (site.target / "seed.npz").stat()
    assert stats["seed.npz"] == [seed.st_size, seed.st_mtime_ns] and sorted(stats) == [
        "fedn.yaml", "models/m.bin", "old.py", "seed.npz"
    ]  # fmt: skip
    (site.target / "seed.npz").write_bytes(b"trained in place")  # the code trains the seed model
    (site.target / "models" / "m.bin").write_bytes(b"mmmm")  # same size, a new mtime
    os.utime(site.target / "models" / "m.bin", ns=(0, seed.st_mtime_ns + 1))

    report = site.unpack({"fedn.yaml": FEDN_YAML, "train.py": b"v2"})

    assert not (site.target / "old.py").exists()  # unchanged: removed as before
    assert (site.target / "seed.npz").read_bytes() == b"trained in place"
    assert (site.target / "models" / "m.bin").read_bytes() == b"mmmm"
    assert (report.removed, report.changed, report.kept) == (1, 2, 0)
    assert report.describe().endswith(
        "0 run-time files kept; kept 2 files the package changed since they were shipped"
    )
    # From now on they are the package's run-time files, as with the stock client.
    assert site.unpack({"fedn.yaml": FEDN_YAML}).kept == 2


def test_a_record_without_stats_removes_stale_files_as_before(tmp_path: Path) -> None:
    """A record written before stats were kept cannot tell a changed file: it is removed."""
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "seed.npz": b"seed"})
    (site.target / "seed.npz").write_bytes(b"trained")
    data = json.loads(site.record.read_text())
    for entry in data["targets"].values():
        del entry["stats"]
    site.record.write_text(json.dumps(data))
    report = site.unpack({"fedn.yaml": FEDN_YAML})
    assert not (site.target / "seed.npz").exists() and (report.removed, report.changed) == (1, 0)


def test_a_changed_shipped_file_in_the_way_of_the_new_version_is_refused(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.unpack({"fedn.yaml": FEDN_YAML, "results": b"seed", "utils/a.py": b"a"})
    (site.target / "results").write_bytes(b"trained")
    (site.target / "utils" / "a.py").write_bytes(b"edited")
    before = snapshot(site.root / "site")
    with pytest.raises(PackageError, match="results is a file or link there and a directory in the package"):
        site.unpack({"fedn.yaml": FEDN_YAML, "results/readme": b"r", "utils/a.py": b"a"})
    with pytest.raises(PackageError, match="utils is a directory there and a file in the package"):
        site.unpack({"fedn.yaml": FEDN_YAML, "results": b"seed", "utils": b"a file"})
    assert snapshot(site.root / "site") == before


def test_read_only_modes_touch_only_what_the_package_shipped(tmp_path: Path) -> None:
    """With an extract dir of ``.`` the site's own files are in it: their modes are the site's."""
    site = Site(tmp_path, read_only=True)
    site.target.mkdir(parents=True)
    data = site.target / "data"
    data.mkdir(0o750)
    (data / "x.csv").write_text("site data")
    (data / "x.csv").chmod(0o444)  # kept read-only by the site on purpose
    (site.target / "notes.txt").write_text("mine")
    (site.target / "notes.txt").chmod(0o664)
    data.chmod(0o750)
    site.unpack({"fedn.yaml": FEDN_YAML, "lib/a.py": b"a"})
    assert stat.S_IMODE((site.target / "lib" / "a.py").stat().st_mode) == 0o400
    assert stat.S_IMODE((site.target / "lib").stat().st_mode) == 0o500
    assert stat.S_IMODE(site.target.stat().st_mode) == 0o500
    site_modes = {"data": 0o750, "data/x.csv": 0o444, "notes.txt": 0o664}
    assert {rel: stat.S_IMODE((site.target / rel).stat().st_mode) for rel in site_modes} == site_modes

    writable = Site(tmp_path)  # the site turns the policy off
    writable.unpack({"fedn.yaml": FEDN_YAML, "lib/a.py": b"a2", "lib/b.py": b"b"})
    assert stat.S_IMODE(site.target.stat().st_mode) & 0o700 == 0o700
    assert stat.S_IMODE((site.target / "lib").stat().st_mode) & 0o700 == 0o700
    assert {rel: stat.S_IMODE((site.target / rel).stat().st_mode) for rel in site_modes} == site_modes
