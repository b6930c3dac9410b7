"""One `fedclient run` per work dir; a restart is the same client and does not download again."""

from __future__ import annotations

import json
from pathlib import Path

from fedclient.adapters.sandbox.federation import Federation

from tests.e2e.test_run_cli import spawn, stop


def downloads(fed: Federation) -> int:
    assert fed.controller is not None
    return sum(r.path.startswith("/api/v1/packages/download") for r in fed.controller.requests)


async def test_lock_identity_and_package_reuse_across_restarts(
    tmp_path: Path, federation: Federation
) -> None:
    work = tmp_path / "client"
    args = ("run", "--api-url", federation.api_url, "--work-dir", str(work))  # no --client-id, no --name
    assert federation.controller is not None and federation.combiner is not None

    first = await spawn(*args, cwd=tmp_path)
    try:
        await federation.wait_for_clients(timeout=60)
        second = await spawn(*args, cwd=tmp_path)
        code = await second.wait(60)
        assert code == 2, second.tail()
        [line] = second.stderr.strip().splitlines()
        assert line == (
            f"fedclient: error: another fedclient (pid {first.pid}) is already using the work dir "
            f"{work.resolve()}; stop it or give this one its own --work-dir"
        )
    finally:
        log = await stop(first)
    identity = json.loads((work / "identity.json").read_text())
    assert list(federation.controller.clients) == [identity["client_id"]]
    assert downloads(federation) == 1 and "not downloading it again" not in log

    again = await spawn(*args, cwd=tmp_path)
    try:
        await federation.wait_for_clients(timeout=60)
        [result] = await federation.run(1)
        assert result.updates == 1
        [update] = federation.combiner.updates
        assert (update.sender_name, update.sender_client_id) == (identity["name"], identity["client_id"])
    finally:
        log = await stop(again)
    assert list(federation.controller.clients) == [identity["client_id"]]  # the same client to the server
    assert downloads(federation) == 1, "an unchanged package was downloaded again"
    assert "unchanged since the last start" in log
