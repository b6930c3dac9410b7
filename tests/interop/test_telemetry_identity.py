"""Telemetry, heartbeat usage and a kept identity, in the real FEDn 0.33 server's records.

The stock client and fedclient run side by side, so the report compares what each sends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.interop.checks import check_clean_exit, wait_for
from tests.interop.clients import FEDCLIENT, Client, _env, start_fedclient, start_stock_client
from tests.interop.conftest import Package, setup_package
from tests.interop.fednnet import FednNetwork

pytestmark = pytest.mark.interop
KEYS = {"cpu_usage", "memory_usage"}


def telemetry(net: FednNetwork, client_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = net.rest(f"/api/v1/telemetry/?sender.client_id={client_id}")["result"]
    return rows


def test_telemetry_and_heartbeat_usage_beside_the_stock_client(
    fedn_network: FednNetwork, digits_package: Package
) -> None:
    net = fedn_network
    setup_package(net, digits_package)
    stock = start_stock_client(net, "stock-0", index=0, count=2)
    ours = start_fedclient(net, "fedclient-1", index=1, count=2)
    both: list[Client] = [stock, ours]
    wait_for(
        "two telemetry messages per client",
        lambda: all(len(telemetry(net, c.client_id)) >= 4 for c in both),
        net,
    )

    seen = {c.kind: telemetry(net, c.client_id) for c in both}
    for kind, rows in seen.items():
        assert {r["key"] for r in rows} == KEYS, (kind, rows)
        for row in rows:
            assert row["sender"]["role"] in ("CLIENT", 1), row  # FEDn stores the enum name
            assert 0.0 <= float(row["value"]) <= 100.0, row
    ours_rows = seen["fedclient"]
    assert {r["sender"]["name"] for r in ours_rows} == {"fedclient-1"}
    memory = [float(r["value"]) for r in ours_rows if r["key"] == "memory_usage"]
    assert all(m > 0 for m in memory), ours_rows  # never the 0.0 FEDn stores for a missing value
    stamps = sorted(r["timestamp"] for r in ours_rows if r["key"] == "memory_usage")
    assert len(stamps) >= 2

    beats = net.heartbeats()
    by_client = {c.kind: [b for b in beats if b["sender_client_id"] == c.client_id] for c in both}
    assert by_client["stock"] and by_client["fedclient"], beats[-10:]
    assert all(b["memory_utilisation"] == 0 and b["cpu_utilisation"] == 0 for b in by_client["stock"])
    assert all(0 < b["memory_utilisation"] <= 100 for b in by_client["fedclient"]), by_client["fedclient"]
    report = {
        kind: {
            "telemetry": [(r["key"], round(float(r["value"]), 1), r["timestamp"]) for r in rows[:6]],
            "heartbeats": [
                (round(b["cpu_utilisation"], 1), round(b["memory_utilisation"], 1))
                for b in by_client[kind][:4]
            ],
        }
        for kind, rows in seen.items()
    }
    print("server records:", json.dumps(report, indent=1))
    check_clean_exit(net, ours)


def _start_ours_without_id(net: FednNetwork, home: Path, name: str) -> Any:
    cmd = [str(FEDCLIENT), "run", "--api-url", net.api_url, "--work-dir", str(home / "work")]
    return net.spawn(name, cmd, cwd=home, env=_env(0, 1))


def _clients(net: FednNetwork) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = net.rest("/api/v1/clients/")["result"]
    return rows


def test_a_restart_is_the_same_client_and_does_not_download_again_unlike_the_stock_client(
    fedn_network: FednNetwork, digits_package: Package
) -> None:
    net = fedn_network
    setup_package(net, digits_package)
    home = net.workdir / "kept"
    home.mkdir()
    runs = []
    for attempt in range(2):
        proc = _start_ours_without_id(net, home, f"kept-{attempt}")
        wait_for(
            "fedclient to join",
            lambda proc=proc: "connected to combiner" in proc.log.read_text(),  # type: ignore[misc]
            net,
        )
        code = net.finish(proc)
        runs.append((code, proc.log.read_text(errors="replace")))
    identity = json.loads((home / "work" / "identity.json").read_text())
    records = _clients(net)
    assert [r["client_id"] for r in records] == [identity["client_id"]], records  # one client, not two

    # The stock client restarted the same way (same directory, no --client-id) is a new client each time.
    stock_home = net.workdir / "stock-kept"
    stock_home.mkdir()
    for attempt in range(2):
        stock = start_stock_client(net, f"stock-kept-{attempt}", home=stock_home, with_id=False)
        wait_for(
            "the stock client to join",
            lambda stock=stock: "Listening to task stream" in stock.log_text(),  # type: ignore[misc]
            net,
        )
        net.finish(stock.proc)
    stock_records = [r for r in _clients(net) if r["client_id"] != identity["client_id"]]
    assert len(stock_records) == 2 and len({r["client_id"] for r in stock_records}) == 2, stock_records
    assert len({r["name"] for r in stock_records}) == 2  # a new random name too
    assert records[0]["name"] == identity["name"]
    assert [code for code, _ in runs] == [0, 0]
    # FEDn 0.33 serves no checksum (404), so the server's ETag tells that the package is unchanged.
    assert "downloaded compute package" in runs[0][1] and "not downloaded again" not in runs[0][1]
    assert "not downloaded again: the server says it is unchanged" in runs[1][1], runs[1][1][-3000:]
    assert "downloaded compute package" not in runs[1][1]
    assert "Traceback" not in runs[1][1]
