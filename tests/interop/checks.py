"""Assertions shared by the interop tests, all on the FEDn server's own records.

Two sources, both written by the real FEDn 0.33 processes:

* the REST API (rounds, models, validations), summarised by ``fedn_session.py``;
* the combiner's record of the ModelUpdate messages it received and the updates its
  FedAvg aggregator loaded (``fedn_launch.record_updates``). FEDn's SQL statestore
  keeps only the *number* of aggregated updates, and drops ``sender.client_id`` from
  validations, so this record is what proves *which* clients were aggregated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from tests.interop.clients import Client
from tests.interop.fednnet import COMBINER_NAME, FednNetwork

CLIENT_ROLE = 1  # fedn.proto Role.CLIENT


def accuracy(metrics: dict[str, Any]) -> float:
    value = metrics.get("test_accuracy", metrics.get("accuracy"))
    assert isinstance(value, (int, float)), f"no accuracy in validation metrics {metrics}"
    return float(value)


def round_accuracy(rnd: dict[str, Any]) -> float:
    values = [accuracy(v["metrics"]) for v in rnd["validations"]]
    return sum(values) / len(values)


def check_rounds(result: dict[str, Any], rounds: int, clients: Sequence[Client]) -> None:
    """Each round Finished, a new chained global model, per client one update status and validation."""
    shown = json.dumps(result, indent=1)[:6000]
    assert result["complete"], f"rounds or validations missing after the grace period:\n{shown}"
    got = result["rounds"]
    assert [r["round_id"] for r in got] == [str(i) for i in range(1, rounds + 1)], shown
    previous = None
    for rnd in got:
        assert rnd["status"] == "Finished", shown
        assert rnd["model_id"] and rnd["model_id"] != rnd["input_model_id"], shown
        if previous is not None:
            assert rnd["input_model_id"] == previous, (
                f"round {rnd['round_id']} did not start from the last model"
            )
        previous = rnd["model_id"]
        assert rnd["nr_aggregated_models"] == [len(clients)], shown
        senders = sorted(v["sender_name"] for v in rnd["validations"])
        assert senders == sorted(c.name for c in clients), (
            f"validations of round {rnd['round_id']}: {senders}"
        )
    assert len({r["model_id"] for r in got}) == rounds


def check_aggregated(net: FednNetwork, result: dict[str, Any], clients: Sequence[Client]) -> None:
    """Per round, the combiner received one update from each client and aggregated exactly those."""
    events = net.received_updates()
    expected = sorted((c.name, c.client_id) for c in clients)
    for rnd in result["rounds"]:
        received = [
            e
            for e in events
            if e["event"] == "received"
            and e["session_id"] == result["session_id"]
            and e["round_id"] == rnd["round_id"]
        ]
        senders = sorted((e["sender_name"], e["sender_client_id"]) for e in received)
        assert senders == expected, f"round {rnd['round_id']}: updates from {senders}, expected {expected}"
        aggregated = {
            e["model_update_id"]
            for e in events
            if e["event"] == "aggregated" and e["round_id"] == rnd["round_id"]
        }
        assert aggregated == {e["model_update_id"] for e in received}, f"round {rnd['round_id']}"
        for update in received:
            assert update["model_id"] == rnd["input_model_id"], update
            assert update["sender_role"] == CLIENT_ROLE, update
            assert update["receiver_name"] == COMBINER_NAME, update
            assert isinstance(update["num_examples"], int) and update["num_examples"] > 0, update


def check_clean_exit(net: FednNetwork, client: Client) -> None:
    """fedclient ends on SIGTERM with exit code 0 and no traceback (the stock client is not checked)."""
    code = net.finish(client.proc)
    log = client.log_text()
    assert code == 0, f"{client.name} exited with {code}:\n{log[-3000:]}"
    assert "Traceback" not in log, log[-3000:]


def wait_for(what: str, check: Callable[[], bool], net: FednNetwork, timeout: float = 60) -> None:
    """Poll ``check`` until true; fail with every log tail if a process died or time ran out."""
    deadline = time.monotonic() + timeout
    while not check():
        net.check_alive()
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{net.log_tails()}"
        time.sleep(0.5)
