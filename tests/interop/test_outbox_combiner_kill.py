"""The real FEDn 0.33 combiner SIGKILLed and restarted mid-round, while fedclient trains.

What FEDn does: the killed round is gone (the combiner kept it in memory), the
controller times the round out and runs the next one on the restarted combiner,
which would average any update it gets into *that* round. So the client must
not deliver the killed round's update at all (its global model is gone from the
restarted combiner), and must deliver each later round's update exactly once.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from typing import Any

import pytest

from tests.interop.clients import start_fedclient
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fedn_venv import venv_python
from tests.interop.fednnet import LAUNCHER, FednNetwork

pytestmark = pytest.mark.interop


def wait_for_text(read: Any, text: str, timeout: float, after: int = 0) -> None:
    deadline = time.monotonic() + timeout
    while text not in read()[after:]:
        assert time.monotonic() < deadline, f"{text!r} did not appear within {timeout:g} s"
        time.sleep(0.05)


def kill_and_restart_combiner(net: FednNetwork) -> float:
    """SIGKILL the combiner's process group, start a new one on the same port; seconds it was down."""
    [old] = [p for p in net._procs if p.name == "combiner"]
    killed = time.monotonic()
    os.killpg(old.popen.pid, signal.SIGKILL)  # a pid we started, in its own group
    old.popen.wait(timeout=30)
    net._procs.remove(old)
    old.handle.close()
    new = net.spawn(
        "combiner-restarted",
        [str(venv_python(net.venv)), str(LAUNCHER), "combiner", "--init", str(net.workdir / "combiner.yaml")],
    )
    wait_for_text(lambda: new.log.read_text(errors="replace"), "ready for gRPC requests", 90)
    return time.monotonic() - killed


def test_combiner_sigkill_mid_round(fedn_network: FednNetwork, digits_package: Package) -> None:
    net = fedn_network
    setup_package(net, digits_package)
    client = start_fedclient(net, "fedclient-k", env={"FEDN_DELIVERY_RETRY_MAX": "1"})
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        session = pool.submit(run_session, net, 1, 3, 20)
        # the first round's task reached the client: kill the combiner while it trains
        wait_for_text(client.log_text, "received train task", 120)
        down = kill_and_restart_combiner(net)
        result: dict[str, Any] = session.result(timeout=280)
    log = client.log_text()
    rounds = {r["round_id"]: r for r in result["rounds"]}
    assert rounds["1"]["status"] != "Success", rounds["1"]
    events = [e for e in net.received_updates() if e["event"] == "received"]
    mine = [e for e in events if e["sender_client_id"] == client.client_id]
    # the killed round's update was never delivered (into a later round or anywhere)
    assert not [e for e in mine if e["round_id"] == "1"], mine
    assert "dropped update" in log and ("no longer holds global model" in log or "superseded" in log), log[
        -3000:
    ]
    # the client recovered: every later round got its update exactly once, and aggregated it
    for round_id in ("2", "3"):
        assert rounds[round_id]["status"] == "Success", rounds[round_id]
        ids = [e["model_update_id"] for e in mine if e["round_id"] == round_id]
        assert len(ids) == 1, (round_id, mine)
        assert rounds[round_id]["nr_aggregated_models"] == [1], rounds[round_id]
    print(
        f"\nRECOVERY real FEDn combiner SIGKILL mid-round: combiner down {down:.1f} s; "
        f"session finished in {result['seconds_to_finish']:.1f} s"
    )
    assert net.finish(client.proc) == 0
    assert "Traceback" not in log
