"""An unchanged package costs no download: conditional GET with the controller's ETag."""

from __future__ import annotations

from pathlib import Path

from fedclient.adapters.controller_http import ControllerEndpoint, HttpxPackageSource
from fedclient.adapters.sandbox.controller import SandboxController


async def test_the_same_version_is_not_sent_twice_a_new_one_is(tmp_path: Path) -> None:
    v1, v2 = tmp_path / "v1.tgz", tmp_path / "v2.tgz"
    v1.write_bytes(b"one" * 1000)
    v2.write_bytes(b"two" * 1000)
    ctl = SandboxController("127.0.0.1", 12080, package=v1)
    ctl.start("127.0.0.1", 0)
    try:
        endpoint = ControllerEndpoint.build("127.0.0.1", api_port=ctl.port)
        async with HttpxPackageSource(endpoint, timeout=5.0) as source:
            first = await source.fetch(tmp_path / "a")
            assert first.path is not None and first.path.read_bytes() == v1.read_bytes() and first.tag
            same = await source.fetch(tmp_path / "b", unchanged_tag=first.tag)
            assert same.path is None and same.tag == first.tag
            assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
            ctl.set_package(v2)
            new = await source.fetch(tmp_path / "c", unchanged_tag=first.tag)
            assert new.path is not None and new.path.read_bytes() == v2.read_bytes()
            assert new.tag and new.tag != first.tag
    finally:
        ctl.stop()
    asked = [r.headers.get("if-none-match") for r in ctl.requests if "packages/download" in r.path]
    assert asked == [None, first.tag, first.tag]  # every attempt recorded
