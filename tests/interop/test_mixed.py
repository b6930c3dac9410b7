"""FEDn's stock client and fedclient in the same session: both updates aggregated every round."""

from __future__ import annotations

import pytest

from tests.interop.checks import check_aggregated, check_clean_exit, check_rounds, round_accuracy
from tests.interop.clients import OUR_BIN, start_fedclient, start_stock_client
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fednnet import FednNetwork

pytestmark = pytest.mark.interop


def test_stock_client_and_fedclient_share_a_session(
    fedn_network: FednNetwork, digits_package: Package
) -> None:
    setup_package(fedn_network, digits_package)
    stock = start_stock_client(fedn_network, "stock-0", index=0, count=2)
    ours = start_fedclient(fedn_network, "fedclient-1", index=1, count=2)

    result = run_session(fedn_network, clients=2, rounds=3)

    check_rounds(result, rounds=3, clients=[stock, ours])
    check_aggregated(fedn_network, result, [stock, ours])
    first, *_, last = result["rounds"]
    assert round_accuracy(last) > round_accuracy(first)

    # The combiner saw the same ModelUpdate.meta shape from both clients: training_metadata,
    # config (the round config JSON it reads round_id from) and the timing keys.
    received = [e for e in fedn_network.received_updates() if e["event"] == "received"]
    keys = {e["sender_name"]: set(e["meta_keys"]) for e in received}
    assert keys["fedclient-1"] >= keys["stock-0"], keys
    # fedclient runs from the site venv (no numpy) and takes `python` from PATH, as the stock client does.
    assert f"package interpreter: python -> {OUR_BIN}/python (found on PATH)" in ours.log_text()
    check_clean_exit(fedn_network, ours)
