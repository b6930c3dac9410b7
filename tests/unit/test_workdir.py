"""A stable identity kept in the work dir, and one client per work dir (a lock)."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fedclient.app.container import build_container, client_lifecycle
from fedclient.app.plan import build_plan
from fedclient.app.settings_load import load_settings
from fedclient.app.workdir import IDENTITY_FILE, keep_identity, resolve_identity, work_dir_lock
from fedclient.domain.errors import ConfigError
from fedclient.domain.model import Identity


def test_an_identity_is_made_once_and_kept(tmp_path: Path) -> None:
    first = resolve_identity(tmp_path, None, None)
    assert first.name.startswith("client") and len(first.client_id) == 36
    assert json.loads((tmp_path / IDENTITY_FILE).read_text()) == {
        "name": first.name,
        "client_id": first.client_id,
    }
    assert resolve_identity(tmp_path, None, None) == first  # a restart is the same client
    assert resolve_identity(tmp_path / "other", None, None) != first  # another work dir, another client


def test_given_values_win_and_missing_ones_are_kept(tmp_path: Path) -> None:
    kept = resolve_identity(tmp_path, None, None)
    assert resolve_identity(tmp_path, "site-a", None) == Identity("site-a", kept.client_id)
    assert resolve_identity(tmp_path, None, None) == Identity("site-a", kept.client_id)  # the new name stays
    assert resolve_identity(tmp_path, "n", "given-id") == Identity("n", "given-id")
    # Both given: nothing is read or written.
    assert resolve_identity(tmp_path / "fresh", "n", "i") == Identity("n", "i")
    assert not (tmp_path / "fresh").exists()


def test_the_plan_uses_the_kept_identity(tmp_path: Path) -> None:
    settings = load_settings({"api_url": "localhost", "work_dir": tmp_path / "w"})
    keep_identity(tmp_path / "w", build_plan(settings).identity)  # the container's identity_file, at start
    assert build_plan(settings).identity == build_plan(settings).identity


async def test_resolving_providers_writes_nothing_the_client_start_keeps_the_identity_and_the_lock(
    tmp_path: Path,
) -> None:
    settings = load_settings({"api_url": "localhost", "work_dir": tmp_path / "w"})
    container = build_container(settings)
    planned = container.plan().identity
    await container.lifecycle()
    assert not (tmp_path / "w").exists(), "building the client wrote nothing"
    await container.shutdown_resources()

    async with client_lifecycle(build_container(settings)) as life:
        assert (
            json.loads((tmp_path / "w" / IDENTITY_FILE).read_text())["client_id"]
            == life.plan.identity.client_id
        )
        with pytest.raises(ConfigError, match="already using the work dir"), work_dir_lock(tmp_path / "w"):
            pass
    assert life.plan.identity != planned  # nothing was kept by the first container: a new identity
    with work_dir_lock(tmp_path / "w"):  # released when the client closed
        pass
    assert build_plan(settings).identity == life.plan.identity  # the next start is the same client


@pytest.mark.parametrize("text", ["{not json", "[]", '{"name": "a"}', '{"name": "", "client_id": "x"}'])
def test_a_broken_identity_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / IDENTITY_FILE).write_text(text)
    with pytest.raises(ConfigError, match=r"identity\.json"):
        resolve_identity(tmp_path, None, None)


def test_a_second_holder_of_the_work_dir_is_refused(tmp_path: Path) -> None:
    refused = pytest.raises(ConfigError, match=rf"another fedclient \(pid {os.getpid()}\).*{tmp_path}")
    with work_dir_lock(tmp_path), refused, work_dir_lock(tmp_path):
        pass
    with work_dir_lock(tmp_path):  # released on exit
        pass


def test_the_lock_dies_with_a_killed_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from fedclient.app.workdir import work_dir_lock\n"
            "with work_dir_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"), work_dir_lock(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    deadline = time.monotonic() + 5
    while True:
        try:
            with work_dir_lock(tmp_path):
                break
        except ConfigError:
            assert time.monotonic() < deadline, "the lock outlived its process"
            time.sleep(0.05)


def test_a_work_dir_that_cannot_be_locked_is_used_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An NFS mount without a lock service answers ENOLCK: not a reason to stop the client."""
    import fcntl

    def no_lock_service(_fd: int, _operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_lock_service)
    with caplog.at_level(logging.WARNING, logger="fedclient.workdir"), work_dir_lock(tmp_path / "work"):
        ran = True
    assert ran
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.getMessage() == (
        f"cannot lock the work dir {tmp_path / 'work'} ({os.strerror(errno.ENOLCK)}): "
        "a second fedclient using it would not be stopped"
    )
