"""Archive safety: the domain rules for members, and the unpacker that must obey them.

A hostile archive must be refused before anything is written; a good one must unpack
whatever its suffix says, into a fresh directory.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from fedclient.adapters.package_archive import TarPackageUnpacker
from fedclient.adapters.package_build import build_package
from fedclient.domain.errors import PackageError
from fedclient.domain.package import ArchiveLimits, ArchiveMember, MemberType, check_members, member_problem
from hypothesis import given
from hypothesis import strategies as st

FEDN_YAML = b"entry_points:\n  train:\n    command: python train.py\n"


# ------------------------------------------------------------ domain rules --


def file(name: str, size: int = 1) -> ArchiveMember:
    return ArchiveMember(name, MemberType.FILE, size)


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (file("../x"), "escapes"),
        (file("a/../../x"), "escapes"),
        (file("a/b/.."), "escapes"),
        (file("..\\x"), "escapes"),
        (file("/etc/x"), "absolute"),
        (file("\\etc\\x"), "absolute"),
        (file("C:\\x"), "absolute"),
        (file("C:x"), "absolute"),
        (file(""), "empty"),
        (file("a\x00b"), "NUL"),
        (ArchiveMember("link", MemberType.SYMLINK), "symlink"),
        (ArchiveMember("hard", MemberType.HARDLINK), "hardlink"),
        (ArchiveMember("dev", MemberType.DEVICE), "device"),
        (ArchiveMember("fifo", MemberType.FIFO), "fifo"),
        (ArchiveMember("sock", MemberType.OTHER), "other"),
        (file("big", size=11), "exceeds"),
        (file("negative", size=-1), "exceeds"),
    ],
)
def test_unsafe_member_is_refused_with_a_reason(member: ArchiveMember, why: str) -> None:
    problem = member_problem(member, ArchiveLimits(max_member_bytes=10))
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    "name", ["fedn.yaml", "client/train.py", "./a/b.txt", "a/./b", "dir/", "..x", "x..", "."]
)
def test_safe_members_pass(name: str) -> None:
    assert member_problem(file(name)) is None
    assert member_problem(ArchiveMember(name, MemberType.DIRECTORY)) is None


def test_check_members_names_the_bad_member() -> None:
    with pytest.raises(PackageError, match=r"'\.\./evil'.*escapes"):
        check_members([file("ok"), file("../evil"), file("later")])


def test_check_members_limits_count_and_total() -> None:
    limits = ArchiveLimits(max_members=2, max_member_bytes=10, max_total_bytes=15)
    with pytest.raises(PackageError, match="more than the limit of 2 members"):
        check_members([file("a"), file("b"), file("c")], limits)
    with pytest.raises(PackageError, match="total limit of 15 bytes"):
        check_members([file("a", 10), file("b", 10)], limits)
    check_members([file("a", 7), file("b", 8)], limits)


_component = st.text(
    alphabet=st.characters(blacklist_characters="/\\\x00", blacklist_categories=("Cs",)), min_size=1
).filter(lambda c: c not in (".", ".."))


@given(
    before=st.lists(_component, max_size=3),
    after=st.lists(_component, max_size=3),
    sep=st.sampled_from(["/", "\\"]),
)
def test_any_dotdot_component_is_refused(before: list[str], after: list[str], sep: str) -> None:
    name = sep.join([*before, "..", *after])
    assert member_problem(file(name)) is not None


_safe_component = st.text(alphabet="abcXYZ019_-. ", min_size=1, max_size=8).filter(
    lambda c: c not in (".", "..")
)


@given(parts=st.lists(_safe_component, min_size=1, max_size=5), kind=st.sampled_from(list(MemberType)[:2]))
def test_plain_relative_names_are_accepted(parts: list[str], kind: MemberType) -> None:
    assert member_problem(ArchiveMember("/".join(parts), kind, 3)) is None


# --------------------------------------------------------------- adapter --


def tar_info(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode = kind, len(data) if kind == tarfile.REGTYPE else 0, 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:  # type: ignore[call-overload]
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def good_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [
        (tar_info("fedn.yaml", data=FEDN_YAML), FEDN_YAML),
        (tar_info("src", tarfile.DIRTYPE), b""),
        (tar_info("src/train.py", data=b"print('hi')\n", mode=0o4755), b"print('hi')\n"),
        (tar_info("data.bin", data=b"\x00" * 10, mode=0o600), b"\x00" * 10),
    ]


HOSTILE = {
    "traversal": tar_info("../evil.txt", data=b"x"),
    "nested traversal": tar_info("a/../../evil.txt", data=b"x"),
    "absolute": tar_info("/tmp/fedclient-evil.txt", data=b"x"),
    "windows drive": tar_info("C:\\evil.txt", data=b"x"),
    "symlink": tar_info("link", tarfile.SYMTYPE, linkname="/etc"),
    "hardlink": tar_info("hard", tarfile.LNKTYPE, linkname="/etc/passwd"),
    "device": tar_info("dev", tarfile.CHRTYPE, devmajor=1, devminor=3),
    "fifo": tar_info("fifo", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_tar_is_refused_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    info = HOSTILE[kind]
    archive = write_tar(tmp_path / "pkg.tgz", [*good_members(), (info, b"x" if info.isreg() else b"")])
    out = tmp_path / "out"
    dest = out / "package"
    with pytest.raises(PackageError, match="unsafe archive member"):
        TarPackageUnpacker().unpack(archive, dest)
    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path.parent / "evil.txt").exists()
    assert not Path("/tmp/fedclient-evil.txt").exists()


def test_symlink_then_file_through_it_writes_nothing_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [
        (tar_info("fedn.yaml", data=FEDN_YAML), FEDN_YAML),
        (tar_info("escape", tarfile.SYMTYPE, linkname=str(outside)), b""),
        (tar_info("escape/pwned.txt", data=b"x"), b"x"),
    ]
    with pytest.raises(PackageError, match="symlink"):
        TarPackageUnpacker().unpack(write_tar(tmp_path / "p.tgz", members), tmp_path / "dest")
    assert list(outside.iterdir()) == []


def test_oversize_member_and_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "p.tgz", good_members())
    with pytest.raises(PackageError, match="exceeds the per-member limit"):
        TarPackageUnpacker(ArchiveLimits(max_member_bytes=5)).unpack(archive, tmp_path / "a")
    with pytest.raises(PackageError, match="more than the limit of 3 members"):
        TarPackageUnpacker(ArchiveLimits(max_members=3)).unpack(archive, tmp_path / "b")
    with pytest.raises(PackageError, match="total limit of 20 bytes"):
        TarPackageUnpacker(ArchiveLimits(max_total_bytes=20)).unpack(archive, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tgz"]


def test_good_archive_unpacks_with_sanitized_modes(tmp_path: Path) -> None:
    root = TarPackageUnpacker().unpack(write_tar(tmp_path / "p.tgz", good_members()), tmp_path / "dest")
    assert root == tmp_path / "dest"
    assert (root / "fedn.yaml").read_bytes() == FEDN_YAML
    assert (root / "src" / "train.py").read_text() == "print('hi')\n"
    assert stat.S_IMODE((root / "src" / "train.py").stat().st_mode) == 0o755  # setuid dropped
    assert stat.S_IMODE((root / "data.bin").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "p.tgz"]  # no staging left over


def test_dot_slash_members_as_made_by_tar_c_dot(tmp_path: Path) -> None:
    members = [(tar_info(".", tarfile.DIRTYPE), b""), (tar_info("./fedn.yaml", data=FEDN_YAML), FEDN_YAML)]
    root = TarPackageUnpacker().unpack(write_tar(tmp_path / "p.tgz", members), tmp_path / "dest")
    assert root == tmp_path / "dest" and (root / "fedn.yaml").is_file()


def test_file_where_a_directory_is_needed_is_a_package_error(tmp_path: Path) -> None:
    members = [(tar_info("a", data=b"x"), b"x"), (tar_info("a/fedn.yaml", data=FEDN_YAML), FEDN_YAML)]
    with pytest.raises(PackageError, match="clashes"):
        TarPackageUnpacker().unpack(write_tar(tmp_path / "p.tgz", members), tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tgz"]


def test_stale_destination_is_replaced(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "old").mkdir(parents=True)
    (dest / "old" / "fedn.yaml").write_bytes(FEDN_YAML)
    (dest / "stale.txt").write_text("old")
    members = [(tar_info("zzz/fedn.yaml", data=FEDN_YAML), FEDN_YAML)]
    root = TarPackageUnpacker().unpack(write_tar(tmp_path / "p.tgz", members), dest)
    assert root == dest / "zzz"
    assert sorted(p.name for p in dest.iterdir()) == ["zzz"]


def test_a_refused_archive_also_removes_the_stale_destination(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "fedn.yaml").write_bytes(FEDN_YAML)
    archive = write_tar(tmp_path / "p.tgz", [(HOSTILE["traversal"], b"x")])
    with pytest.raises(PackageError):
        TarPackageUnpacker().unpack(archive, dest)
    assert not dest.exists()


@pytest.mark.parametrize(
    ("name", "mode"),
    [("pkg.gz", "w:gz"), ("pkg", "w:gz"), ("pkg.tgz", "w:bz2"), ("pkg.zip", "w:xz"), ("pkg.bin", "w")],
)
def test_format_is_sniffed_not_taken_from_the_suffix(tmp_path: Path, name: str, mode: str) -> None:
    archive = write_tar(tmp_path / name, good_members(), mode)
    root = TarPackageUnpacker().unpack(archive, tmp_path / "dest")
    assert (root / "fedn.yaml").is_file()


def test_zip_package_unpacks_and_zip_traversal_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.tgz"  # a zip in disguise
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("client/fedn.yaml", FEDN_YAML)
        zf.writestr("client/train.py", "print()")
    assert TarPackageUnpacker().unpack(good, tmp_path / "a") == tmp_path / "a" / "client"

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("fedn.yaml", FEDN_YAML)
        zf.writestr("../evil.txt", "x")
    with pytest.raises(PackageError, match="escapes"):
        TarPackageUnpacker().unpack(bad, tmp_path / "b")
    assert not (tmp_path / "b").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fedn.yaml", FEDN_YAML)
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(PackageError, match="symlink"):
        TarPackageUnpacker().unpack(archive, tmp_path / "dest")


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not an archive", bz2.compress(b"not a tar either"), b"\x1f\x8b\x08\x00garbage"],
)
def test_corrupt_archive_is_a_package_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    archive = tmp_path / "broken-package.tgz"
    archive.write_bytes(content)
    with pytest.raises(PackageError, match=r"broken-package\.tgz"):
        TarPackageUnpacker().unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_truncated_archive_is_a_package_error(tmp_path: Path) -> None:
    members = [*good_members(), (tar_info("big.bin", data=bytes(range(256)) * 400), bytes(range(256)) * 400)]
    data = write_tar(tmp_path / "full.tgz", members).read_bytes()
    archive = tmp_path / "cut.tgz"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(PackageError, match=r"cut\.tgz"):
        TarPackageUnpacker().unpack(archive, tmp_path / "dest")


def test_archive_without_manifest_is_refused(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "p.tgz", [(tar_info("train.py", data=b"x"), b"x")])
    with pytest.raises(PackageError, match=r"the compute package has no fedn\.yaml"):
        TarPackageUnpacker().unpack(archive, tmp_path / "dest")


def test_first_manifest_in_sorted_top_down_order_wins(tmp_path: Path) -> None:
    members = [(tar_info(f"{d}/fedn.yaml", data=FEDN_YAML), FEDN_YAML) for d in ("b", "a/deeper", "a", "c")]
    root = TarPackageUnpacker().unpack(write_tar(tmp_path / "p.tgz", members), tmp_path / "dest")
    assert root == tmp_path / "dest" / "a"


def test_sha256_is_lowercase_hex_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 5))
    assert TarPackageUnpacker().sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(PackageError, match=r"missing\.tgz"):
        TarPackageUnpacker().sha256(tmp_path / "missing.tgz")


# ------------------------------------------------------------ build_package --


def test_build_package_is_reproducible_and_skips_junk(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel in [
        "fedn.yaml",
        "train.py",
        "__pycache__/x.pyc",
        "lib/m.pyc",
        ".venv/bin/python",
        "data/big.csv",
        "notes/keep.txt",
        "secret.key",
    ]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    (src / ".fednignore").write_text("# comment\ndata/\n*.key\n")
    (src / "train.py").chmod(0o755)
    first = build_package(src, tmp_path / "one.tgz")
    second = build_package(src, tmp_path / "two.tgz")
    assert first.read_bytes() == second.read_bytes()
    inside = build_package(src, src / "package.tgz")  # the output itself must not be packed
    assert inside.read_bytes() == first.read_bytes()
    with tarfile.open(first) as tf:
        names = tf.getnames()
        assert tf.getmember("train.py").mode == 0o755
    assert set(names) == {".fednignore", "fedn.yaml", "lib", "notes", "notes/keep.txt", "train.py"}
    root = TarPackageUnpacker().unpack(first, tmp_path / "dest")
    assert root == tmp_path / "dest" and (root / "fedn.yaml").read_text() == "fedn.yaml"


def test_build_package_needs_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"no fedn\.yaml"):
        build_package(tmp_path, tmp_path / "p.tgz")
