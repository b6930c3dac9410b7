"""A package whose checksum has not changed since the last start is not downloaded again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from fedclient.adapters.package_cache import DiskPackageCache
from fedclient.app.setting_names import spell
from fedclient.domain.credentials import Credentials
from fedclient.domain.errors import PackageError
from fedclient.domain.lifecycle import ClientPlan
from fedclient.domain.model import Identity
from fedclient.domain.package import ChecksumVerdict
from fedclient.domain.package_cache import RECORD
from fedclient.domain.package_setup import PackageSetup, PreparedPackage
from fedclient.testing.fakes import FakeClock, InMemoryPackageSource, InMemoryUnpacker, SeededRandom

from tests.unit.world import MANIFEST


def package(path: Path, marker: str) -> Path:
    manifest = {"entry_points": {**MANIFEST["entry_points"], "train": {"command": f"python {marker}.py"}}}
    path.write_text(json.dumps({"client/fedn.yaml": json.dumps(manifest)}))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def start(work: Path, source: InMemoryPackageSource, **plan_kw: Any) -> PreparedPackage:
    """One client start up to a ready package (what run() does before connecting)."""
    plan = ClientPlan(identity=Identity("a", "b"), work_dir=work, setting_names=spell, **plan_kw)
    setup = PackageSetup(
        plan.package,
        source,
        InMemoryUnpacker(),
        Credentials(None),
        DiskPackageCache(),
        FakeClock(),
        SeededRandom(),
    )
    return await setup.prepare()


async def test_unchanged_package_is_reused_changed_one_downloaded(tmp_path: Path) -> None:
    v1 = package(tmp_path / "v1.json", "one")
    source = InMemoryPackageSource(v1, digest(v1))
    first = await start(tmp_path / "work", source)
    second = await start(tmp_path / "work", source)
    assert source.downloads == 1
    assert second.checksum_verdict is ChecksumVerdict.VERIFIED
    assert second.package_dir is not None and (second.package_dir / "fedn.yaml").is_file()
    assert first.package_dir == second.package_dir

    v2 = package(tmp_path / "v2.json", "two")
    source.archive, source.server_checksum = v2, digest(v2)  # a new package on the server
    third = await start(tmp_path / "work", source)
    assert source.downloads == 2
    assert third.package_dir is not None and "two.py" in (third.package_dir / "fedn.yaml").read_text()
    kept = sorted(p.name for p in (tmp_path / "work" / "package-cache").iterdir())
    assert kept == sorted([RECORD, "package.tgz"])  # only the latest package is kept


async def test_a_kept_copy_changed_on_disk_is_downloaded_again(tmp_path: Path) -> None:
    v1 = package(tmp_path / "v1.json", "one")
    source = InMemoryPackageSource(v1, digest(v1))
    await start(tmp_path / "work", source)
    kept = tmp_path / "work" / "package-cache" / "package.tgz"
    kept.write_text(kept.read_text().replace("one", "evil"))
    life = await start(tmp_path / "work", source)
    assert source.downloads == 2
    assert life.package_dir is not None and "evil.py" not in (life.package_dir / "fedn.yaml").read_text()


async def test_without_a_checksum_the_servers_version_tag_decides(tmp_path: Path) -> None:
    # FEDn 0.33 never serves a checksum; its download has an ETag and honours If-None-Match.
    v1 = package(tmp_path / "v1.json", "one")
    source = InMemoryPackageSource(v1, None)
    await start(tmp_path / "work", source)
    again = await start(tmp_path / "work", source)
    assert source.downloads == 1 and source.fetches == [None, source.tag()]
    assert again.checksum_verdict is ChecksumVerdict.UNVERIFIED  # as unverified as the first time

    source.archive = package(tmp_path / "v2.json", "two")  # a new package: another tag
    changed = await start(tmp_path / "work", source)
    assert source.downloads == 2
    assert changed.package_dir is not None and "two.py" in (changed.package_dir / "fedn.yaml").read_text()


async def test_no_checksum_and_no_tag_means_download_every_time(tmp_path: Path) -> None:
    source = InMemoryPackageSource(package(tmp_path / "v1.json", "one"), None)
    source.tags = False
    await start(tmp_path / "work", source)
    await start(tmp_path / "work", source)
    assert source.downloads == 2 and source.fetches == [None, None]


async def test_require_checksum_is_not_satisfied_by_a_kept_unverified_copy(tmp_path: Path) -> None:
    source = InMemoryPackageSource(package(tmp_path / "v1.json", "one"), None)
    await start(tmp_path / "work", source)
    with pytest.raises(PackageError, match="could not be verified"):
        await start(tmp_path / "work", source, require_checksum=True)


async def test_a_pinned_checksum_alone_allows_reuse_and_a_mismatch_still_fails(tmp_path: Path) -> None:
    v1 = package(tmp_path / "v1.json", "one")
    source = InMemoryPackageSource(v1, None)
    await start(tmp_path / "work", source, package_checksum=digest(v1).upper())
    await start(tmp_path / "work", source, package_checksum=digest(v1))
    assert source.downloads == 1
    with pytest.raises(PackageError, match="checksum mismatch"):
        await start(tmp_path / "work", source, package_checksum="ab" * 32)
    assert source.downloads == 2  # a different pin is never satisfied by the kept copy


async def test_a_kept_package_meets_the_site_allowlist_like_a_download(tmp_path: Path) -> None:
    v1 = package(tmp_path / "v1.json", "one")
    source = InMemoryPackageSource(v1, digest(v1))
    await start(tmp_path / "work", source)
    with pytest.raises(PackageError, match="allowlist"):
        await start(tmp_path / "work", source, allowed_packages=frozenset({"ab" * 32}))
    assert source.downloads == 1  # refused from the kept copy, before any download
