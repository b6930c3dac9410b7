"""Two `fedclient run` processes train examples/digits for 3 rounds on a real FEDn 0.33 server."""

from __future__ import annotations

import pytest

from tests.interop.checks import check_aggregated, check_clean_exit, check_rounds, round_accuracy
from tests.interop.clients import start_fedclient
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fednnet import FednNetwork

pytestmark = pytest.mark.interop


def test_two_fedclients_three_rounds(fedn_network: FednNetwork, digits_package: Package) -> None:
    setup_package(fedn_network, digits_package)
    clients = [start_fedclient(fedn_network, f"fedclient-{i}", index=i, count=2) for i in range(2)]

    result = run_session(fedn_network, clients=2, rounds=3)

    check_rounds(result, rounds=3, clients=clients)
    check_aggregated(fedn_network, result, clients)
    first, *_, last = result["rounds"]
    assert round_accuracy(last) > round_accuracy(first), [round_accuracy(r) for r in result["rounds"]]
    for client in clients:
        check_clean_exit(fedn_network, client)
