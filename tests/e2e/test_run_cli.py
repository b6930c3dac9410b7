"""`fedclient run` as a user runs it: a real process joining a local federation."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.federation import Federation

from tests.child import Child
from tests.e2e.conftest import fedclient_exe, run_cli


async def spawn(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Child:
    """Start `fedclient *args` as client 0 of 1; its pipes are read while it runs."""
    env = {**os.environ, "FEDN_CLIENT_INDEX": "0", "FEDN_NUM_CLIENTS": "1", **(env or {})}
    return await Child.start(fedclient_exe(), *args, cwd=cwd, env=env)


async def stop(proc: Child) -> str:
    """SIGTERM a spawned client; it must exit 0. Returns its stderr (the log)."""
    code = await proc.stop(signal.SIGTERM, 30)
    assert code == 0, proc.tail()
    return proc.stderr


async def test_run_joins_trains_validates_and_stops_on_sigterm(
    tmp_path: Path, federation: Federation
) -> None:
    proc = await spawn(
        "run",
        "--api-url",
        federation.api_url,
        "--name",
        "e2e-client",
        "--client-id",
        "e2e-id",
        "--work-dir",
        str(tmp_path / "client"),
        cwd=tmp_path,
    )
    try:
        await federation.wait_for_clients(timeout=60)
        [result] = await federation.run(1)
        assert result.updates == 1 and result.validations == 1
        assert result.metrics["test_accuracy"] > 0.3
        assert federation.combiner is not None
        [update] = federation.combiner.updates
        assert (update.sender_name, update.sender_client_id) == ("e2e-client", "e2e-id")
    finally:
        code = await proc.stop(signal.SIGTERM, 30)
    assert code == 0, proc.tail()
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("federation", ["the-right-token-0123456789"], indirect=True)
async def test_wrong_token_exits_non_zero_with_one_line(tmp_path: Path, federation: Federation) -> None:
    secret = "a-wrong-token-9876543210"
    proc = await spawn(
        "run",
        "--api-url",
        federation.api_url,
        "--token",
        secret,
        "--work-dir",
        str(tmp_path / "client"),
        cwd=tmp_path,
    )
    code = await proc.wait(60)
    text = proc.stderr
    assert code == 2
    assert "Traceback" not in text
    assert secret not in text
    assert text.count("can read it in `ps`") == 1  # said once, without the token
    [line] = [ln for ln in text.splitlines() if ln.startswith("fedclient: error:")]
    assert "Invalid token" in line


@pytest.mark.parametrize("federation", ["the-right-token-0123456789"], indirect=True)
async def test_right_token_from_a_token_file_joins(tmp_path: Path, federation: Federation) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("the-right-token-0123456789\n")
    proc = await spawn(
        "run",
        "--api-url",
        federation.api_url,
        "--work-dir",
        str(tmp_path / "client"),
        cwd=tmp_path,
        env={"FEDN_AUTH_TOKEN_FILE": str(token_file)},
    )
    try:
        await federation.wait_for_clients(timeout=60)
        [result] = await federation.run(1)
        assert result.updates == 1
    finally:
        code = await proc.stop(signal.SIGTERM, 30)
    assert code == 0
    assert "in `ps`" not in proc.stderr and "the-right-token" not in proc.stderr


def test_run_without_a_target_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = run_cli("run", cwd=tmp_path, env={"FEDN_API_URL": ""}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("fedclient: error: say where to join")
    assert "Traceback" not in result.stderr


def test_missing_init_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("run", "--init", str(tmp_path / "nope.yaml"), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert f"fedclient: error: --init {tmp_path / 'nope.yaml'}: no such file" in result.stderr
    assert "Traceback" not in result.stderr
