"""The real FEDn 0.33 combiner SIGKILLed and restarted mid-round, while fedclient trains.

What FEDn does: the killed round is gone (the combiner kept it in memory), and the
restarted combiner would average any update it gets into its *next* round. So the
client must not deliver the killed round's update at all (its global model is gone
from the restarted combiner), and must deliver each later round's update exactly
once. FEDn's controller itself never gets over the lost round (it waits for the
combiner's report without a limit), so the test restarts it before the next session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from tests.interop.clients import start_fedclient
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fedn_venv import venv_python
from tests.interop.fednnet import LAUNCHER, FednNetwork
from tests.interop.procs import HOST

pytestmark = pytest.mark.interop


def wait_for_text(read: Any, text: str, timeout: float, after: int = 0) -> None:
    deadline = time.monotonic() + timeout
    while text not in read()[after:]:
        assert time.monotonic() < deadline, f"{text!r} did not appear within {timeout:g} s"
        time.sleep(0.05)


START_SESSION = """
import json, sys, time
from fedn.network.api.client import APIClient
args = json.loads(sys.argv[1])
api = APIClient(args["host"], args["port"])
deadline = time.monotonic() + 90
while not [c for c in api.get_clients()["result"] if c.get("status") == "online"]:
    assert time.monotonic() < deadline, "no client online"
    time.sleep(0.5)
reply = api.start_session(aggregator="fedavg", round_timeout=15, rounds=1, validate=True,
                          helper="numpyhelper", min_clients=1, requested_clients=1)
print(json.dumps(reply))
"""


def start_session_and_return(net: FednNetwork) -> str:
    """Start a one-round session and return at once (FEDn's controller will hang in it)."""
    args = json.dumps({"host": HOST, "port": net.api_port})
    proc = subprocess.run(
        [str(venv_python(net.venv)), "-c", START_SESSION, args],
        capture_output=True,
        text=True,
        env=net.env(),
        timeout=120,
        check=True,
    )
    session_id: str = json.loads(proc.stdout.strip().splitlines()[-1])["session_id"]
    return session_id


def restart(net: FednNetwork, name: str, cmd: list[str], ready: Any) -> None:
    """SIGKILL the process group of server ``name`` (one we started) and start ``cmd`` in its place."""
    [old] = [p for p in net._procs if p.name == name]
    os.killpg(old.popen.pid, signal.SIGKILL)
    old.popen.wait(timeout=30)
    net._procs.remove(old)
    old.handle.close()
    new = net.spawn(f"{name}-restarted", cmd)
    ready(new)


def test_combiner_sigkill_mid_round(fedn_network: FednNetwork, digits_package: Package) -> None:
    net = fedn_network
    python, launcher = str(venv_python(net.venv)), str(LAUNCHER)
    setup_package(net, digits_package)
    client = start_fedclient(net, "fedclient-k", env={"FEDN_DELIVERY_RETRY_MAX": "1"})
    killed_session = start_session_and_return(net)
    # the client has the round's model and trains: SIGKILL the combiner now. (Not at "received
    # train task": a kill before the model download ends fails the task, with no update to drop.)
    wait_for_text(client.log_text, "running train:", 120)
    killed = time.monotonic()
    restart(
        net,
        "combiner",
        [python, launcher, "combiner", "--init", str(net.workdir / "combiner.yaml")],
        lambda p: wait_for_text(lambda: p.log.read_text(errors="replace"), "ready for gRPC requests", 90),
    )
    down = time.monotonic() - killed
    # the client reconnects, finds the round's global model gone, and drops the update
    wait_for_text(client.log_text, "dropped update", 60)
    dropped_after = time.monotonic() - killed
    assert "no longer holds global model" in client.log_text() or "superseded" in client.log_text()
    # FEDn's controller now waits for the lost round without a limit: the operator restarts it
    restart(
        net,
        "controller",
        [python, launcher, "controller", "--port", str(net.api_port)],
        lambda p: net._wait(f"{net.api_url}/health", "controller", 90),
    )
    result = run_session(net, clients=1, rounds=2, round_timeout=30)
    received = [e for e in net.received_updates() if e["event"] == "received"]
    mine = [e for e in received if e["sender_client_id"] == client.client_id]
    # the killed round's update was never delivered, into that round or a later one
    assert not [e for e in mine if e["session_id"] == killed_session], mine
    # the client recovered: each round of the next session got its update exactly once, aggregated
    assert [r["status"] for r in result["rounds"]] == ["Finished", "Finished"], result
    for rnd in result["rounds"]:
        ids = [
            e["model_update_id"]
            for e in mine
            if e["session_id"] == result["session_id"] and e["round_id"] == rnd["round_id"]
        ]
        assert len(ids) == 1, (rnd, mine)
        assert rnd["nr_aggregated_models"] == [1], rnd
    print(
        f"\nRECOVERY real FEDn combiner SIGKILL mid-round: combiner down {down:.1f} s, "
        f"update dropped {dropped_after:.1f} s after the kill"
    )
    log = client.log_text()
    assert net.finish(client.proc) == 0
    assert "Traceback" not in log
